-- Set when images finish while Redis is unreachable, so the fan-in count is rebuilt.
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

IF COL_LENGTH(N'dbo.requests', N'fanin_reseed_at') IS NULL
ALTER TABLE dbo.requests ADD fanin_reseed_at DATETIME2(6) NULL;
GO
