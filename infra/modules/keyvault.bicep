// Key Vault in RBAC mode holding the webhook signing secret. Secret names allow only letters,
// digits and dashes, so the secret is 'webhook-secret' and the app setting WEBHOOK_SECRET refers to
// it (functionapp.bicep). Rotation: README "Deploy to Azure".
param name string
param location string
param tags object
@secure()
param webhookSecret string

var webhookSecretName = 'webhook-secret'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no VNet in this template: the Functions platform resolves Key Vault references over the public endpoint. Access is RBAC-only (Key Vault Secrets User on the one secret).
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // A deleted vault (azd down) stays recoverable for 7 days and cannot be purged early.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry date: an expired secret can no longer be read, so the Key Vault reference would stop resolving and the app would lose its signing secret; rotation is an operator action (README), not a deadline.
  parent: vault
  name: webhookSecretName
  properties: {
    value: webhookSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output webhookSecretName string = secret.name
