CREATE TABLE "keygate_leak_reports" (
	"key_id" text NOT NULL,
	"fingerprint" text NOT NULL,
	"url" text,
	"source" text NOT NULL,
	"reported_at" timestamp with time zone NOT NULL,
	CONSTRAINT "keygate_leak_reports_pkey" PRIMARY KEY("key_id","fingerprint")
);
--> statement-breakpoint
CREATE TABLE "keygate_webhook_attempts" (
	"delivery_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"status" integer,
	"error" text,
	"duration_ms" integer NOT NULL,
	"succeeded" boolean NOT NULL,
	CONSTRAINT "keygate_webhook_attempts_pkey" PRIMARY KEY("delivery_id","attempt")
);
--> statement-breakpoint
CREATE TABLE "keygate_webhook_deliveries" (
	"id" text PRIMARY KEY NOT NULL,
	"event_id" text NOT NULL,
	"endpoint_id" text NOT NULL,
	"owner_id" text,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"leased_until" timestamp with time zone,
	"last_status" integer,
	"last_error" text,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "keygate_webhook_deliveries_state_check" CHECK ("keygate_webhook_deliveries"."state" in ('pending', 'succeeded', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "keygate_webhook_endpoints" (
	"id" text PRIMARY KEY NOT NULL,
	"owner_id" text,
	"url" text NOT NULL,
	"secret" text NOT NULL,
	"events" text[] NOT NULL,
	"description" text,
	"managed_by" text NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "keygate_webhook_endpoints_managed_by_check" CHECK ("keygate_webhook_endpoints"."managed_by" in ('config', 'api'))
);
--> statement-breakpoint
CREATE TABLE "keygate_webhook_events" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"owner_id" text,
	"key_id" text,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "keygate_webhook_worker" (
	"name" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"lease_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "keygate_api_keys" ADD COLUMN "leak" jsonb;--> statement-breakpoint
ALTER TABLE "keygate_leak_reports" ADD CONSTRAINT "keygate_leak_reports_key_id_keygate_api_keys_id_fk" FOREIGN KEY ("key_id") REFERENCES "public"."keygate_api_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "keygate_webhook_attempts" ADD CONSTRAINT "keygate_webhook_attempts_delivery_id_keygate_webhook_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."keygate_webhook_deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "keygate_webhook_deliveries" ADD CONSTRAINT "keygate_webhook_deliveries_event_fk" FOREIGN KEY ("event_id") REFERENCES "public"."keygate_webhook_events"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "keygate_webhook_deliveries" ADD CONSTRAINT "keygate_webhook_deliveries_endpoint_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."keygate_webhook_endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "keygate_webhook_deliveries_event_endpoint_key" ON "keygate_webhook_deliveries" USING btree ("event_id","endpoint_id");--> statement-breakpoint
CREATE INDEX "keygate_webhook_deliveries_due_idx" ON "keygate_webhook_deliveries" USING btree ("next_attempt_at") WHERE "keygate_webhook_deliveries"."state" = 'pending';--> statement-breakpoint
CREATE INDEX "keygate_webhook_deliveries_owner_created_idx" ON "keygate_webhook_deliveries" USING btree ("owner_id","created_at");--> statement-breakpoint
CREATE INDEX "keygate_webhook_endpoints_owner_idx" ON "keygate_webhook_endpoints" USING btree ("owner_id");--> statement-breakpoint
CREATE INDEX "keygate_webhook_events_created_idx" ON "keygate_webhook_events" USING btree ("created_at");