// Azure Managed Redis (Microsoft.Cache/redisEnterprise, Balanced tier), the successor of Azure Cache
// for Redis, which retires on 2028-09-30 and which tenants new to it may no longer be able to create.
// Chosen with main.bicep's redisService = 'managedRedis'. TLS only (clientProtocol Encrypted, port
// 10000, TLS 1.2), access keys off, Entra auth through the 'default' access policy.
// NoCluster: the fan-in Lua script touches three keys of a request at once, which a clustered
// database would refuse across hash slots; one shard is plenty for the counters.
// Shape from Azure/bicep-registry-modules avm/res/cache/redis-enterprise (database/main.bicep,
// database/access-policy-assignment/main.bicep, tests/e2e/amr-no-cluster) and
// learn.microsoft.com/azure/redis/entra-for-authentication.
param name string
param location string
param tags object
@description('Azure Managed Redis SKU (Balanced_B0 is the smallest).')
param skuName string
param appPrincipalId string

resource cluster 'Microsoft.Cache/redisEnterprise@2025-05-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: 'Enabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-05-01-preview' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'NoCluster'
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

resource appAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-05-01-preview' = {
  parent: database
  name: 'imgpipeapp'
  properties: {
    accessPolicyName: 'default'
    user: {
      objectId: appPrincipalId
    }
  }
}

output name string = cluster.name
output hostName string = cluster.properties.hostName
output sslPort int = database.properties.port
