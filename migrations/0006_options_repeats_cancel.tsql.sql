-- Issue 13: per-request compression options, repeated URLs compressed once, cancel.
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

-- A request's options (NULL: the service's setting); a request without a row uses the settings.
IF OBJECT_ID(N'dbo.request_options', N'U') IS NULL
CREATE TABLE dbo.request_options (
    request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT PK_request_options PRIMARY KEY
        CONSTRAINT FK_request_options_requests REFERENCES dbo.requests (request_id),
    quality INT NULL,
    size_target FLOAT NULL,
    format VARCHAR(8) NULL,
    max_dimension INT NULL
);
GO

-- A slot whose URL repeats an earlier slot of its request (the leader): only the leader is
-- fetched and compressed; its outcome is copied to its aliases in the same transaction.
IF OBJECT_ID(N'dbo.image_aliases', N'U') IS NULL
CREATE TABLE dbo.image_aliases (
    request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL,
    seq INT NOT NULL,
    leader_seq INT NOT NULL,
    CONSTRAINT PK_image_aliases PRIMARY KEY (request_id, seq)
);
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_image_aliases_leader'
               AND object_id = OBJECT_ID(N'dbo.image_aliases'))
CREATE NONCLUSTERED INDEX IX_image_aliases_leader ON dbo.image_aliases (request_id, leader_seq);
GO

-- Kept like done_images and failed_images: images skipped by a cancel, and slots that repeat a URL.
IF COL_LENGTH(N'dbo.requests', N'skipped_images') IS NULL
ALTER TABLE dbo.requests ADD skipped_images INT NOT NULL CONSTRAINT DF_requests_skipped_images DEFAULT 0;
GO

IF COL_LENGTH(N'dbo.requests', N'repeated_images') IS NULL
ALTER TABLE dbo.requests ADD repeated_images INT NOT NULL CONSTRAINT DF_requests_repeated_images DEFAULT 0;
GO
