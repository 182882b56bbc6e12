// Azure Cache for Redis: TLS only (port 6380, non-TLS port off, TLS 1.2 minimum) and Microsoft
// Entra authentication only (access keys disabled). The app identity gets the built-in
// 'Data Contributor' access policy, which allows the fan-in script (EVALSHA/SCRIPT LOAD, SADD, SCARD,
// SET, EXPIRE) and PING but not the @dangerous commands (FLUSHALL, INFO, KEYS, CONFIG ...).
// See learn.microsoft.com/azure/azure-cache-for-redis/cache-azure-active-directory-for-authentication
// and cache-configure-role-based-access-control.
// Microsoft retires Azure Cache for Redis (Basic/Standard/Premium) on 2028-09-30 in favour of Azure
// Managed Redis: main.bicep's redisService = 'managedRedis' creates that instead (managed-redis.bicep).
param name string
param location string
param tags object
@allowed(['Basic', 'Standard'])
param skuName string
param capacity int
param appPrincipalId string

resource redis 'Microsoft.Cache/redis@2024-11-01' = {
  // checkov:skip=CKV_AZURE_89: no VNet in this template: Flex instances reach the cache over its public endpoint; only TLS with an Entra token of an identity holding an access policy gets in (access keys are disabled).
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: skuName
      family: 'C'
      capacity: capacity
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    redisVersion: '6'
    disableAccessKeyAuthentication: true
    redisConfiguration: {
      'aad-enabled': 'true'
    }
  }
}

resource appAccess 'Microsoft.Cache/redis/accessPolicyAssignments@2024-11-01' = {
  parent: redis
  name: 'imgpipeapp'
  properties: {
    accessPolicyName: 'Data Contributor'
    objectId: appPrincipalId
    objectIdAlias: 'imgpipe-app'
  }
}

output name string = redis.name
output hostName string = redis.properties.hostName
output sslPort int = redis.properties.sslPort
