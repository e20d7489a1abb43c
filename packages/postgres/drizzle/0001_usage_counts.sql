CREATE TABLE "keygate_usage_batches" (
	"id" text PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "keygate_usage_counts" (
	"key_id" text NOT NULL,
	"minute" timestamp with time zone NOT NULL,
	"dimensions" text NOT NULL,
	"key_start" text,
	"owner_id" text,
	"ip" text,
	"user_agent" text,
	"method" text,
	"path" text,
	"authenticated" integer NOT NULL,
	"scope_checks" integer NOT NULL,
	"resource_checks" integer NOT NULL,
	"first_seen" timestamp with time zone NOT NULL,
	"last_seen" timestamp with time zone NOT NULL,
	CONSTRAINT "keygate_usage_counts_pkey" PRIMARY KEY("key_id","minute","dimensions")
);
--> statement-breakpoint
CREATE INDEX "keygate_usage_batches_at_idx" ON "keygate_usage_batches" USING btree ("at");