-- Idempotency keys bound to their upload, and images waiting for a delayed retry (issue 11).
-- requests.upload_sha256: SHA-256 (hex) of the upload a key was first used with; the same key with
-- another upload is refused. Keys are stored from now on as a digest of caller and key, so a key
-- stored before this version (raw, with no upload_sha256) is simply never found again.
-- images.next_attempt_at: while a transiently failed image waits, when its delayed retry is due.
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

IF COL_LENGTH(N'dbo.requests', N'upload_sha256') IS NULL
ALTER TABLE dbo.requests ADD upload_sha256 CHAR(64) COLLATE Latin1_General_100_BIN2 NULL;
GO

IF COL_LENGTH(N'dbo.images', N'next_attempt_at') IS NULL
ALTER TABLE dbo.images ADD next_attempt_at DATETIME2(6) NULL;
GO
