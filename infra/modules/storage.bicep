// The storage account: Functions host state (AzureWebJobsStorage), the Flex deployment package,
// the image / notify / fan-out queues with their poison queues, and the private output container.
// Shared-key access is off (identity only, as in Azure-Samples/functions-quickstart-python-http-azd)
// and no container may be public: outputs are handed out as user-delegation SAS URLs.
param name string
param location string
param tags object
param imageQueueName string
param notifyQueueName string
param fanoutQueueName string
param outputContainerName string
param deploymentContainerName string

// The host moves a message to '<queue>-poison' after maxDequeueCount attempts and creates that queue
// itself only when it holds rights to; creating both here means nothing is lost on the first poison
// message and the app's health check can probe them like the main queues.
var queueNames = [
  imageQueueName
  '${imageQueueName}-poison'
  notifyQueueName
  '${notifyQueueName}-poison'
  fanoutQueueName
  '${fanoutQueueName}-poison'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: no VNet in this template, so Flex instances reach storage over its public endpoint; shared keys are off and every caller needs an Entra token and a data role. Private endpoints are the README's hardening step.
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35 (public endpoint needed without VNet integration).
  // checkov:skip=CKV_AZURE_206: LRS is enough: queues hold work that the database can replay and outputs can be recomputed from the inputs; GRS doubles the cost for little.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource outputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: outputContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
