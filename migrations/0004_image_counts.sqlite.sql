-- Per-request counts kept with each image's change of status (the status read no longer counts
-- a request's images), and the index that lets per-request status filters seek. Images an older
-- build finishes after this ran are not counted; Store.get_request recounts once none is Pending.
ALTER TABLE requests ADD COLUMN done_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN failed_images INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET
    done_images = (SELECT COUNT(*) FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Done'),
    failed_images = (SELECT COUNT(*) FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Failed');
CREATE INDEX IF NOT EXISTS ix_images_request_status ON images (request_id, status);
