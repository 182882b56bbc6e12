-- The staged fan-out asks, after each range, whether any image of the request is still unsent:
-- a filtered index makes that a seek instead of a scan of a request's images.
CREATE INDEX IF NOT EXISTS ix_images_unenqueued ON images (request_id) WHERE enqueued_at IS NULL;
