-- The staged fan-out asks, after each range, whether any image of the request is still unsent:
-- a filtered index makes that a seek instead of a scan of a request's images.
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

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_images_unenqueued'
               AND object_id = OBJECT_ID(N'dbo.images'))
CREATE NONCLUSTERED INDEX IX_images_unenqueued ON dbo.images (request_id) WHERE enqueued_at IS NULL;
GO
