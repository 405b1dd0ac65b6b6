-- The schema of release b90ae96, which GORM AutoMigrate created. IF NOT EXISTS
-- everywhere: on a database made by that release this migration only adopts
-- it; on a new one it creates the same schema.

-- +goose Up
CREATE TABLE IF NOT EXISTS `webhooks` (`id` text,`tenant_id` text NOT NULL,`user_id` text NOT NULL,`url` text NOT NULL,`normalized_url` text NOT NULL,`status` text NOT NULL,`pause_reason` text NOT NULL DEFAULT "",`secret` text NOT NULL,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL,`paused_at` datetime,`last_unpaused_at` datetime,`failing_since` datetime,PRIMARY KEY (`id`));
CREATE INDEX IF NOT EXISTS `ix_webhooks_owner` ON `webhooks`(`tenant_id`,`user_id`,`created_at`);
CREATE UNIQUE INDEX IF NOT EXISTS `ux_webhooks_owner_url` ON `webhooks`(`tenant_id`,`user_id`,`normalized_url`);
CREATE TABLE IF NOT EXISTS `webhook_event_types` (`webhook_id` text,`event_type` text,PRIMARY KEY (`webhook_id`,`event_type`),CONSTRAINT `fk_webhook_event_types_webhook` FOREIGN KEY (`webhook_id`) REFERENCES `webhooks`(`id`) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS `ix_webhook_event_types_type` ON `webhook_event_types`(`event_type`);
CREATE TABLE IF NOT EXISTS `owners` (`tenant_id` text,`user_id` text,`webhook_count` integer NOT NULL DEFAULT 0,PRIMARY KEY (`tenant_id`,`user_id`));
CREATE TABLE IF NOT EXISTS `tokens` (`id` text,`hash` text NOT NULL,`tenant_id` text NOT NULL,`user_id` text NOT NULL,`permissions` text NOT NULL,`created_at` datetime NOT NULL,`revoked_at` datetime,PRIMARY KEY (`id`));
CREATE UNIQUE INDEX IF NOT EXISTS `idx_tokens_hash` ON `tokens`(`hash`);
CREATE TABLE IF NOT EXISTS `events` (`id` text,`tenant_id` text NOT NULL,`producer_id` text,`type` text NOT NULL,`payload` blob NOT NULL,`deliveries` integer NOT NULL DEFAULT 0,`created_at` datetime NOT NULL,PRIMARY KEY (`id`));
CREATE UNIQUE INDEX IF NOT EXISTS `ux_events_producer` ON `events`(`tenant_id`,`producer_id`);
CREATE TABLE IF NOT EXISTS `deliveries` (`id` integer PRIMARY KEY AUTOINCREMENT,`event_id` text NOT NULL,`webhook_id` text NOT NULL,`event_type` text NOT NULL,`status` text NOT NULL,`attempts` integer NOT NULL DEFAULT 0,`schedule_pos` integer NOT NULL DEFAULT 0,`next_attempt_at` datetime,`leased_until` datetime,`claim_seq` integer NOT NULL DEFAULT 0,`last_status_code` integer,`last_error` text NOT NULL DEFAULT "",`created_at` datetime NOT NULL,`delivered_at` datetime,CONSTRAINT `fk_deliveries_webhook` FOREIGN KEY (`webhook_id`) REFERENCES `webhooks`(`id`) ON DELETE CASCADE,CONSTRAINT `fk_deliveries_event` FOREIGN KEY (`event_id`) REFERENCES `events`(`id`) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS `ix_deliveries_webhook` ON `deliveries`(`webhook_id`,`status`);
CREATE INDEX IF NOT EXISTS `idx_deliveries_event_id` ON `deliveries`(`event_id`);
CREATE INDEX IF NOT EXISTS `ix_deliveries_due` ON `deliveries`(`next_attempt_at`,`id`) WHERE status = 'PENDING';
CREATE TABLE IF NOT EXISTS `attempts` (`id` integer PRIMARY KEY AUTOINCREMENT,`delivery_id` integer NOT NULL,`attempted_at` datetime NOT NULL,`status_code` integer,`error` text NOT NULL DEFAULT "",`duration_ms` real NOT NULL,CONSTRAINT `fk_attempts_delivery` FOREIGN KEY (`delivery_id`) REFERENCES `deliveries`(`id`) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS `idx_attempts_delivery_id` ON `attempts`(`delivery_id`);
