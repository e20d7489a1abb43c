CREATE TABLE "keygate_api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"owner_id" text NOT NULL,
	"type" text NOT NULL,
	"environment" text NOT NULL,
	"digest" text NOT NULL,
	"digest_version" integer DEFAULT 0 NOT NULL,
	"previous_digest" text,
	"previous_digest_expires_at" timestamp with time zone,
	"prefix" text NOT NULL,
	"start" text NOT NULL,
	"scopes" text[] DEFAULT '{}'::text[] NOT NULL,
	"resources" jsonb,
	"restrictions" jsonb,
	"rate_limit" jsonb,
	"metadata" jsonb,
	"expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "keygate_api_keys_type_check" CHECK ("keygate_api_keys"."type" in ('secret', 'public')),
	CONSTRAINT "keygate_api_keys_environment_check" CHECK ("keygate_api_keys"."environment" in ('live', 'test'))
);
--> statement-breakpoint
CREATE TABLE "keygate_audit_events" (
	"id" text PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"action" text NOT NULL,
	"outcome" text NOT NULL,
	"reason" text,
	"key_id" text,
	"key_start" text,
	"owner_id" text,
	"actor" text,
	"ip" text,
	"user_agent" text,
	"method" text,
	"path" text,
	"request_id" text,
	"detail" jsonb
);
--> statement-breakpoint
CREATE UNIQUE INDEX "keygate_api_keys_digest_key" ON "keygate_api_keys" USING btree ("digest");--> statement-breakpoint
CREATE INDEX "keygate_api_keys_previous_digest_idx" ON "keygate_api_keys" USING btree ("previous_digest") WHERE "keygate_api_keys"."previous_digest" is not null;--> statement-breakpoint
CREATE INDEX "keygate_api_keys_owner_created_idx" ON "keygate_api_keys" USING btree ("owner_id","created_at","id");--> statement-breakpoint
CREATE INDEX "keygate_api_keys_created_idx" ON "keygate_api_keys" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "keygate_audit_events_key_at_idx" ON "keygate_audit_events" USING btree ("key_id","at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "keygate_audit_events_owner_at_idx" ON "keygate_audit_events" USING btree ("owner_id","at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "keygate_audit_events_at_idx" ON "keygate_audit_events" USING btree ("at" DESC NULLS LAST,"id" DESC NULLS LAST);