-- Per-request counts kept with each image's change of status, so reading a request's status no
-- longer counts its images (that read ran once per image while Redis was down: quadratic), and
-- the (request_id, status) index that lets per-request status filters seek. Images an older build
-- finishes after this ran are not counted; Store.get_request recounts a request once none is Pending.
-- Session options this script depends on (sqlcmd without -I runs with QUOTED_IDENTIFIER OFF,
-- and filtered indexes then fail). Each SET is its own batch: QUOTED_IDENTIFIER applies from the
-- next batch on.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET ANSI_PADDING ON;
SET ANSI_WARNINGS ON;
SET ARITHABORT ON;
SET CONCAT_NULL_YIELDS_NULL ON;
SET NUMERIC_ROUNDABORT OFF;
GO

IF COL_LENGTH(N'dbo.requests', N'done_images') IS NULL
ALTER TABLE dbo.requests ADD done_images INT NOT NULL CONSTRAINT DF_requests_done_images DEFAULT 0;
GO

IF COL_LENGTH(N'dbo.requests', N'failed_images') IS NULL
ALTER TABLE dbo.requests ADD failed_images INT NOT NULL CONSTRAINT DF_requests_failed_images DEFAULT 0;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_images_request_status'
               AND object_id = OBJECT_ID(N'dbo.images'))
CREATE NONCLUSTERED INDEX IX_images_request_status ON dbo.images (request_id, status);
GO

-- Only where version 4 is not yet recorded: a re-run of the whole chain leaves live counts alone.
IF NOT EXISTS (SELECT 1 FROM dbo.schema_version WHERE version = 4)
BEGIN
    UPDATE r SET
        done_images = (SELECT COUNT(*) FROM dbo.images i WHERE i.request_id = r.request_id AND i.status = 'Done'),
        failed_images = (SELECT COUNT(*) FROM dbo.images i WHERE i.request_id = r.request_id AND i.status = 'Failed')
    FROM dbo.requests r;
END
GO
