-- imgpipe on SQL Server / Azure SQL Database: the schema as first released. Every statement is
-- guarded, so a database created by an older build's schema.sql is adopted as it is.
-- Apply with `python -m shared.migrate` (it records the version in schema_version).
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

IF OBJECT_ID(N'dbo.schema_version', N'U') IS NULL
CREATE TABLE dbo.schema_version (
    version INT NOT NULL CONSTRAINT PK_schema_version PRIMARY KEY,
    name NVARCHAR(200) NOT NULL,
    applied_at DATETIME2(6) NOT NULL
);
GO

IF OBJECT_ID(N'dbo.requests', N'U') IS NULL
CREATE TABLE dbo.requests (
    request_id CHAR(36) NOT NULL CONSTRAINT PK_requests PRIMARY KEY,
    status VARCHAR(16) NOT NULL,
    webhook_url NVARCHAR(2048) NULL,
    idempotency_key NVARCHAR(200) NULL,
    products INT NOT NULL,
    images INT NOT NULL,
    created_at DATETIME2(6) NOT NULL,
    updated_at DATETIME2(6) NOT NULL,
    completed_at DATETIME2(6) NULL,
    fanout_completed_at DATETIME2(6) NULL
);
GO

-- Unique only where a key was given: many requests carry none.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'UX_requests_idempotency_key'
               AND object_id = OBJECT_ID(N'dbo.requests'))
CREATE UNIQUE NONCLUSTERED INDEX UX_requests_idempotency_key
    ON dbo.requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
GO

-- Finds fan-outs interrupted half-way without scanning finished requests.
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'IX_requests_fanout_pending'
               AND object_id = OBJECT_ID(N'dbo.requests'))
CREATE NONCLUSTERED INDEX IX_requests_fanout_pending
    ON dbo.requests (created_at) WHERE fanout_completed_at IS NULL;
GO

IF OBJECT_ID(N'dbo.products', N'U') IS NULL
CREATE TABLE dbo.products (
    request_id CHAR(36) NOT NULL CONSTRAINT FK_products_requests REFERENCES dbo.requests (request_id),
    serial INT NOT NULL,
    line INT NOT NULL,
    name NVARCHAR(1000) NOT NULL,
    CONSTRAINT PK_products PRIMARY KEY (request_id, serial)
);
GO

IF OBJECT_ID(N'dbo.images', N'U') IS NULL
CREATE TABLE dbo.images (
    request_id CHAR(36) NOT NULL,
    seq INT NOT NULL,
    serial INT NOT NULL,
    url_index INT NOT NULL,
    input_url NVARCHAR(2048) NOT NULL,
    status VARCHAR(16) NOT NULL,
    output_url NVARCHAR(2048) NULL,
    error NVARCHAR(1000) NULL,
    bytes_in BIGINT NULL,
    bytes_out BIGINT NULL,
    width INT NULL,
    height INT NULL,
    format VARCHAR(16) NULL,
    quality INT NULL,
    attempts INT NOT NULL CONSTRAINT DF_images_attempts DEFAULT 0,
    enqueued_at DATETIME2(6) NULL,
    started_at DATETIME2(6) NULL,
    finished_at DATETIME2(6) NULL,
    download_ms INT NULL,
    process_ms INT NULL,
    store_ms INT NULL,
    CONSTRAINT PK_images PRIMARY KEY (request_id, seq),
    CONSTRAINT FK_images_products FOREIGN KEY (request_id, serial)
        REFERENCES dbo.products (request_id, serial)
);
GO

IF OBJECT_ID(N'dbo.webhook_deliveries', N'U') IS NULL
CREATE TABLE dbo.webhook_deliveries (
    request_id CHAR(36) NOT NULL CONSTRAINT FK_webhook_deliveries_requests
        REFERENCES dbo.requests (request_id),
    attempt INT NOT NULL,
    delivery_id VARCHAR(64) NOT NULL,
    attempted_at DATETIME2(6) NOT NULL,
    url NVARCHAR(2048) NOT NULL,
    status_code INT NULL,
    error NVARCHAR(1000) NULL,
    succeeded BIT NOT NULL,
    CONSTRAINT PK_webhook_deliveries PRIMARY KEY (request_id, attempt)
);
GO
