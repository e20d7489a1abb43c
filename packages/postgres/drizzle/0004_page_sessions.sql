CREATE TABLE "keygate_page_sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"key_id" text NOT NULL,
	"key_digest" text NOT NULL,
	"owner_id" text NOT NULL,
	"origin" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"active_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "keygate_page_sessions_key_created_idx" ON "keygate_page_sessions" USING btree ("key_id","created_at");--> statement-breakpoint
CREATE INDEX "keygate_page_sessions_active_until_idx" ON "keygate_page_sessions" USING btree ("active_until");