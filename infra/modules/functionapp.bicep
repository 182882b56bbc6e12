// The Function App on Flex Consumption (FC1, Linux, Python 3.11) running as the user-assigned
// identity, and its app settings. Shape from Azure-Samples/functions-quickstart-python-http-azd
// (infra/app/api.bicep, infra/core/host/functions-flexconsumption.bicep). On Flex the runtime and the
// deployment package live in functionAppConfig; FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE,
// SCM_DO_BUILD_DURING_DEPLOYMENT, WEBSITE_CONTENTSHARE and FUNCTIONS_WORKER_PROCESS_COUNT are not
// valid there (learn.microsoft.com/azure/azure-functions/functions-app-settings, "Flex Consumption
// plan deprecations"). tests/infra checks the settings against function.json and the required list
// in infra/app-settings.json.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param identityPrincipalId string
param maximumInstanceCount int
param instanceMemoryMB int
param blobEndpoint string
param queueEndpoint string
param deploymentContainerName string
param applicationInsightsConnectionString string
param imageQueueName string
param notifyQueueName string
param fanoutQueueName string
param outputContainerName string
param outputSasTtlSeconds int
param outputPublicBaseUrl string
param sqlServerFqdn string
param sqlDatabaseName string
param redisHostName string
param redisSslPort int
param keyVaultName string
param webhookSecretName string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex is a regional opt-in with always-ready cost; not needed for a queue-driven batch service that retries.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the upload API is public by design (clients are outside Azure); callers need a function key.
  // checkov:skip=CKV_AZURE_17: client certificates are not how this API authenticates (function keys over TLS).
  // checkov:skip=CKV_AZURE_212: Flex Consumption adds instances per function on demand; there is no fixed instance count to raise for failover.
  // checkov:skip=CKV_AZURE_213: App Service health check (instance replacement) is offered on Dedicated and Premium plans, not on consumption plans (learn.microsoft.com/azure/app-service/monitor-instances-health-check; Microsoft Q&A 762554); GET /api/health is for external probes.
  name: name
  location: location
  // azd finds the app to deploy the 'api' service of azure.yaml to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references resolve with this identity; without it the platform looks for a
    // system-assigned identity, which this app does not have.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  resource appSettings 'config' = {
    // checkov reads every Microsoft.Web/sites/config as site configuration; this one is the app
    // settings dictionary, so the site-configuration checks below do not apply to it:
    // checkov:skip=CKV_AZURE_13: (App Service Authentication) not an app setting; the API uses function keys.
    // checkov:skip=CKV_AZURE_63: (HTTP logging) not an app setting; requests go to Application Insights.
    // checkov:skip=CKV_AZURE_65: (detailed error pages) not an app setting; IIS error pages do not exist on Linux Flex.
    // checkov:skip=CKV_AZURE_66: (failed request tracing) not an app setting; IIS tracing does not exist on Linux Flex.
    // checkov:skip=CKV_AZURE_80: (.NET Framework version) not an app setting; this is a Python app.
    // checkov:skip=CKV_AZURE_88: (Azure Files) Flex Consumption has no Azure Files content share (WEBSITE_CONTENTSHARE is invalid there).
    // checkov:skip=CKV_AZURE_222: (public network access) not an app setting; see the site above.
    name: 'appsettings'
    properties: {
      // Host storage through the identity (no account key exists: shared-key access is off).
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      AzureWebJobsStorage__blobServiceUri: blobEndpoint
      AzureWebJobsStorage__queueServiceUri: queueEndpoint
      // azure-identity's ManagedIdentityCredential / DefaultAzureCredential pick the identity by it.
      AZURE_CLIENT_ID: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      // Local auth is off on the component: the host and the OpenTelemetry exporter send with an
      // Entra token of this identity.
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      IMAGE_QUEUE_NAME: imageQueueName
      NOTIFY_QUEUE_NAME: notifyQueueName
      FANOUT_QUEUE_NAME: fanoutQueueName
      // UID names the user-assigned identity; without it the driver asks for a system-assigned one.
      SQLSERVER_CONNECTION_STRING: 'Driver={ODBC Driver 18 for SQL Server};Server=tcp:${sqlServerFqdn},1433;Database=${sqlDatabaseName};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;Authentication=ActiveDirectoryMsi;UID=${identityClientId}'
      // Entra auth: the user name is the identity's object id (its ACL user on the cache) and the
      // password an Entra token for https://redis.azure.com/.default, refreshed by the app.
      REDIS_URL: 'rediss://${identityPrincipalId}@${redisHostName}:${redisSslPort}/0'
      REDIS_CREDENTIAL: 'managedidentity'
      OUTPUT_STORAGE: 'blob'
      OUTPUT_CONTAINER: outputContainerName
      OUTPUT_URL_MODE: empty(outputPublicBaseUrl) ? 'sas' : 'public'
      OUTPUT_SAS_TTL_SECONDS: string(outputSasTtlSeconds)
      OUTPUT_PUBLIC_BASE_URL: outputPublicBaseUrl
      // Versionless reference: the platform picks up a new secret version (README, rotation).
      WEBHOOK_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${webhookSecretName})'
      // Must equal host.json extensions.queues.maxDequeueCount (tests/infra checks it).
      MAX_DEQUEUE_COUNT: '5'
    }
  }
}

// Basic-auth publishing (FTP and SCM user/password) off: azd and `func azure functionapp publish`
// deploy with an Entra token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
