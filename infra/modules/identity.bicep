// The one identity the app runs as: storage (host and app), SQL, Redis, Key Vault references and
// Application Insights all authenticate with it. User-assigned so that its client id can be written
// into app settings before the site exists (Azure-Samples/functions-quickstart-python-http-azd).
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
