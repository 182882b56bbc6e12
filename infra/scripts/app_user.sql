-- The app identity's contained database user: read, write and execute, no DDL (the schema is
-- applied by the post-provision hook as the Entra admin, never by the app).
-- sqlcmd variables: APP_IDENTITY_NAME, APP_IDENTITY_PRINCIPAL_ID (object id of the identity).
-- WITH OBJECT_ID names the identity without a directory lookup by display name (learn.microsoft.com/
-- azure/azure-sql/database/authentication-microsoft-entra-create-users-with-nonunique-names), as in
-- Azure-Samples/functions-quickstart-python-azd-sql (infra/scripts/sql_add_uami_user.sql).
-- Re-runnable: every azd provision runs it again.
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(APP_IDENTITY_NAME)')
    CREATE USER [$(APP_IDENTITY_NAME)] FROM EXTERNAL PROVIDER WITH OBJECT_ID = '$(APP_IDENTITY_PRINCIPAL_ID)';
GO
ALTER ROLE db_datareader ADD MEMBER [$(APP_IDENTITY_NAME)];
ALTER ROLE db_datawriter ADD MEMBER [$(APP_IDENTITY_NAME)];
GRANT EXECUTE TO [$(APP_IDENTITY_NAME)];
GO
-- An identity given DDL rights by hand (or by an older script) loses them here.
IF IS_ROLEMEMBER('db_ddladmin', N'$(APP_IDENTITY_NAME)') = 1
    ALTER ROLE db_ddladmin DROP MEMBER [$(APP_IDENTITY_NAME)];
IF IS_ROLEMEMBER('db_owner', N'$(APP_IDENTITY_NAME)') = 1
    ALTER ROLE db_owner DROP MEMBER [$(APP_IDENTITY_NAME)];
GO
