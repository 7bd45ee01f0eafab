-- Webhook claims whose cost does not grow with the backlog (dualreg_outbox_claim in
-- functions/60_outbox.sql). A claim walks the subscriptions that have pending
-- deliveries, and for each one reads its due deliveries oldest first from this index,
-- stopping as soon as it has as many as the subscription has room for; whether a row is
-- its pupil's oldest pending delivery is one probe of deliveries_order.
CREATE INDEX deliveries_pending_due ON deliveries (subscription_id, next_attempt_at, id)
    WHERE status = 'pending';

-- The deliveries of a subscription under a lease (in flight, or leased by a daemon that
-- died and not yet reclaimed): counted at every claim for [webhooks] per_subscription.
-- A lease is cleared when its outcome is recorded, so this index stays small.
CREATE INDEX deliveries_leased ON deliveries (subscription_id, lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
