// imgpipe on Azure: everything `azd up` provisions. Resources are declared directly in the modules
// under modules/ (no br/public registry modules) so that checkov can scan all of them offline.
// Layout follows Azure-Samples/functions-quickstart-python-http-azd (infra/main.bicep): a
// subscription-scoped main that creates the resource group and calls resource-group modules.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the subscription and location it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource; must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the deploying user or service principal (azd sets AZURE_PRINCIPAL_ID). It becomes the SQL Entra admin and may manage the webhook secret.')
param principalId string

@description('What principalId is: a person running azd (User) or a CI workload identity (ServicePrincipal).')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Display name recorded for the SQL Entra administrator (the sid, principalId, is what authenticates).')
param sqlAdminLogin string = 'imgpipe-deployer'

@secure()
@description('Initial webhook signing secret. main.parameters.json fills it with azd secretOrRandomPassword, which reads the current Key Vault value back on re-provision so a rotated secret is kept.')
param webhookSecret string

@description('Queue the upload fans out to, one message per image (function.json %IMAGE_QUEUE_NAME%).')
param imageQueueName string = 'image-jobs'

@description('Queue the last image writes to; notify_queue sends the webhook (%NOTIFY_QUEUE_NAME%).')
param notifyQueueName string = 'notify-jobs'

@description('Queue of the staged fan-out (one message per slice of an upload) (%FANOUT_QUEUE_NAME%).')
param fanoutQueueName string = 'fanout-jobs'

@description('Private blob container for the compressed images.')
param outputContainerName string = 'processed-images'

@description('Lifetime of each user-delegation SAS URL handed out for an output (user-delegation keys last at most 7 days).')
@minValue(60)
@maxValue(604800)
param outputSasTtlSeconds int = 86400

@description('Optional public or CDN base URL for outputs; when set, output URLs are built on it instead of SAS.')
param outputPublicBaseUrl string = ''

@description('Which Redis to create: Azure Cache for Redis (cache, TLS port 6380) or its successor Azure Managed Redis (managedRedis, TLS port 10000). Azure Cache for Redis retires on 2028-09-30 and may be refused to tenants new to it.')
@allowed(['cache', 'managedRedis'])
param redisService string = 'cache'

@description('Azure Managed Redis SKU when redisService is managedRedis.')
param managedRedisSkuName string = 'Balanced_B0'

@description('Azure Cache for Redis SKU (Basic has no replica; Standard adds one).')
@allowed(['Basic', 'Standard'])
param redisSkuName string = 'Basic'

@description('Azure Cache for Redis size (C0 = 250 MB is plenty for the fan-in sets).')
@minValue(0)
@maxValue(6)
param redisCapacity int = 0

@description('Flex Consumption instance ceiling.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption instance memory (2048 MB gives Pillow room for a 50 MP image).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-imgpipe-${resourceToken}'
// Flex deploys the package to a blob container of the app's storage, read with the app's identity.
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-imgpipe-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    imageQueueName: imageQueueName
    notifyQueueName: notifyQueueName
    fanoutQueueName: fanoutQueueName
    outputContainerName: outputContainerName
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    webhookSecret: webhookSecret
  }
}

module sql 'modules/sql.bicep' = {
  name: 'sql'
  scope: rg
  params: {
    serverName: 'sql-${resourceToken}'
    databaseName: 'imgpipe'
    location: location
    tags: tags
    adminLogin: sqlAdminLogin
    adminObjectId: principalId
    adminPrincipalType: principalType
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module redis 'modules/redis.bicep' = if (redisService == 'cache') {
  name: 'redis'
  scope: rg
  params: {
    name: 'redis-${resourceToken}'
    location: location
    tags: tags
    skuName: redisSkuName
    capacity: redisCapacity
    appPrincipalId: identity.outputs.principalId
  }
}

module managedRedis 'modules/managed-redis.bicep' = if (redisService == 'managedRedis') {
  name: 'managed-redis'
  scope: rg
  params: {
    name: 'amr-${resourceToken}'
    location: location
    tags: tags
    skuName: managedRedisSkuName
    appPrincipalId: identity.outputs.principalId
  }
}

// Only the chosen Redis exists; ARM evaluates only the branch of if() that applies.
var redisHostName = redisService == 'cache' ? redis!.outputs.hostName : managedRedis!.outputs.hostName
var redisSslPort = redisService == 'cache' ? redis!.outputs.sslPort : managedRedis!.outputs.sslPort

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    webhookSecretName: keyVault.outputs.webhookSecretName
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The host starts as soon as the site exists: its identity must already hold its roles.
  dependsOn: [rbac]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    identityPrincipalId: identity.outputs.principalId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    imageQueueName: imageQueueName
    notifyQueueName: notifyQueueName
    fanoutQueueName: fanoutQueueName
    outputContainerName: outputContainerName
    outputSasTtlSeconds: outputSasTtlSeconds
    outputPublicBaseUrl: outputPublicBaseUrl
    sqlServerFqdn: sql.outputs.fullyQualifiedDomainName
    sqlDatabaseName: sql.outputs.databaseName
    redisHostName: redisHostName
    redisSslPort: redisSslPort
    keyVaultName: keyVault.outputs.name
    webhookSecretName: keyVault.outputs.webhookSecretName
  }
}

// azd stores these in .azure/<env>/.env; the post-provision hook and the README commands read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_SQL_SERVER_NAME string = sql.outputs.name
output AZURE_SQL_SERVER_FQDN string = sql.outputs.fullyQualifiedDomainName
output AZURE_SQL_DATABASE_NAME string = sql.outputs.databaseName
output AZURE_REDIS_HOST_NAME string = redisHostName
output APP_IDENTITY_NAME string = identity.outputs.name
output APP_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APP_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
