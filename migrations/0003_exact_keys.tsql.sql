-- Keys compared exactly and seekably. request_id and idempotency_key take the binary collation
-- Latin1_General_100_BIN2: "abc" and "ABC" are different idempotency keys (as on SQLite), and a
-- VARCHAR parameter (the store sends CAST(? AS VARCHAR(36))) meets a CHAR column of the same code
-- page, so SQL Server compares without converting the column and seeks. Changing a key column's
-- collation needs its keys and indexes dropped first; each step is guarded so the script can be
-- re-run after a failure part-way (the runner also wraps it in one transaction).
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

IF OBJECT_ID(N'dbo.FK_images_products', N'F') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.images DROP CONSTRAINT FK_images_products;
GO

IF OBJECT_ID(N'dbo.FK_products_requests', N'F') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.products DROP CONSTRAINT FK_products_requests;
GO

IF OBJECT_ID(N'dbo.FK_webhook_deliveries_requests', N'F') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.webhook_deliveries DROP CONSTRAINT FK_webhook_deliveries_requests;
GO

IF OBJECT_ID(N'dbo.PK_images', N'PK') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.images DROP CONSTRAINT PK_images;
GO

IF OBJECT_ID(N'dbo.PK_products', N'PK') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.products DROP CONSTRAINT PK_products;
GO

IF OBJECT_ID(N'dbo.PK_webhook_deliveries', N'PK') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.webhook_deliveries DROP CONSTRAINT PK_webhook_deliveries;
GO

IF OBJECT_ID(N'dbo.PK_requests', N'PK') IS NOT NULL AND EXISTS (SELECT 1 FROM sys.columns WHERE name = N'request_id' AND collation_name <> N'Latin1_General_100_BIN2'
              AND object_id IN (OBJECT_ID(N'dbo.requests'), OBJECT_ID(N'dbo.products'),
                                OBJECT_ID(N'dbo.images'), OBJECT_ID(N'dbo.webhook_deliveries')))
ALTER TABLE dbo.requests DROP CONSTRAINT PK_requests;
GO

-- Statistics the server created by itself on a column block a change of its collation (error 5074).
DECLARE @drop NVARCHAR(MAX) = COALESCE((
    SELECT STRING_AGG(N'DROP STATISTICS dbo.' + QUOTENAME(OBJECT_NAME(s.object_id)) + N'.' + QUOTENAME(s.name), N'; ')
    FROM sys.stats s
    JOIN sys.stats_columns sc ON sc.object_id = s.object_id AND sc.stats_id = s.stats_id
    JOIN sys.columns c ON c.object_id = sc.object_id AND c.column_id = sc.column_id
    WHERE s.auto_created = 1 AND OBJECT_SCHEMA_NAME(s.object_id) = N'dbo'
      AND c.name IN (N'request_id', N'idempotency_key') AND c.collation_name <> N'Latin1_General_100_BIN2'), N'');
EXEC sys.sp_executesql @drop;
GO

IF EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.requests') AND name = N'request_id'
           AND collation_name <> N'Latin1_General_100_BIN2')
ALTER TABLE dbo.requests ALTER COLUMN request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL;
GO

IF EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.products') AND name = N'request_id'
           AND collation_name <> N'Latin1_General_100_BIN2')
ALTER TABLE dbo.products ALTER COLUMN request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL;
GO

IF EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.images') AND name = N'request_id'
           AND collation_name <> N'Latin1_General_100_BIN2')
ALTER TABLE dbo.images ALTER COLUMN request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL;
GO

IF EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.webhook_deliveries') AND name = N'request_id'
           AND collation_name <> N'Latin1_General_100_BIN2')
ALTER TABLE dbo.webhook_deliveries ALTER COLUMN request_id CHAR(36) COLLATE Latin1_General_100_BIN2 NOT NULL;
GO

IF EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'UX_requests_idempotency_key'
           AND object_id = OBJECT_ID(N'dbo.requests'))
   AND EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.requests')
               AND name = N'idempotency_key' AND collation_name <> N'Latin1_General_100_BIN2')
DROP INDEX UX_requests_idempotency_key ON dbo.requests;
GO

IF EXISTS (SELECT 1 FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.requests') AND name = N'idempotency_key'
           AND collation_name <> N'Latin1_General_100_BIN2')
ALTER TABLE dbo.requests ALTER COLUMN idempotency_key NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NULL;
GO

IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'UX_requests_idempotency_key'
               AND object_id = OBJECT_ID(N'dbo.requests'))
CREATE UNIQUE NONCLUSTERED INDEX UX_requests_idempotency_key
    ON dbo.requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
GO

IF OBJECT_ID(N'dbo.PK_requests', N'PK') IS NULL
ALTER TABLE dbo.requests ADD CONSTRAINT PK_requests PRIMARY KEY CLUSTERED (request_id);
GO

IF OBJECT_ID(N'dbo.PK_products', N'PK') IS NULL
ALTER TABLE dbo.products ADD CONSTRAINT PK_products PRIMARY KEY CLUSTERED (request_id, serial);
GO

IF OBJECT_ID(N'dbo.PK_images', N'PK') IS NULL
ALTER TABLE dbo.images ADD CONSTRAINT PK_images PRIMARY KEY CLUSTERED (request_id, seq);
GO

IF OBJECT_ID(N'dbo.PK_webhook_deliveries', N'PK') IS NULL
ALTER TABLE dbo.webhook_deliveries ADD CONSTRAINT PK_webhook_deliveries PRIMARY KEY CLUSTERED (request_id, attempt);
GO

IF OBJECT_ID(N'dbo.FK_products_requests', N'F') IS NULL
ALTER TABLE dbo.products ADD CONSTRAINT FK_products_requests
    FOREIGN KEY (request_id) REFERENCES dbo.requests (request_id);
GO

IF OBJECT_ID(N'dbo.FK_images_products', N'F') IS NULL
ALTER TABLE dbo.images ADD CONSTRAINT FK_images_products
    FOREIGN KEY (request_id, serial) REFERENCES dbo.products (request_id, serial);
GO

IF OBJECT_ID(N'dbo.FK_webhook_deliveries_requests', N'F') IS NULL
ALTER TABLE dbo.webhook_deliveries ADD CONSTRAINT FK_webhook_deliveries_requests
    FOREIGN KEY (request_id) REFERENCES dbo.requests (request_id);
GO
