"""The Bicep template, checked offline: it parses, its modules are wired, and the resources carry
the security settings the app depends on (identity-only storage, private outputs, Entra-only SQL,
TLS-only Redis, RBAC Key Vault). No Bicep compiler is installable here; pycep-parser reads the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.bicep_model import (
    INFRA,
    MAIN,
    STORAGE,
    bicep_files,
    module_calls,
    only_resource,
    parse,
    resolve,
    resource_body,
    resources,
)

MODULES = INFRA / "modules"


def test_there_is_a_template() -> None:
    assert MAIN in bicep_files()
    assert len(bicep_files()) >= 5


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_no_registry_modules_so_checkov_sees_every_resource() -> None:
    for path in bicep_files():
        for module in parse(path).get("modules", {}).values():
            assert module["type"] == "local", f"{path.name}: {module['detail']} is not a local module"


def test_main_passes_every_required_module_parameter_and_no_unknown_one() -> None:
    # A stand-in for the compiler's own check: a missing or misspelt parameter fails `azd up`.
    for module, passed in module_calls().items():
        path = INFRA / module
        assert path.is_file(), f"main.bicep calls {module}, which does not exist"
        declared = parse(path).get("parameters", {})
        unknown = set(passed) - set(declared)
        missing = {name for name, spec in declared.items() if "default" not in spec} - set(passed)
        assert not unknown, f"{module}: main passes undeclared parameters {sorted(unknown)}"
        assert not missing, f"{module}: main does not pass {sorted(missing)}"


def test_storage_allows_neither_shared_keys_nor_public_blobs() -> None:
    account = only_resource(STORAGE, "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    for name, container in resources(STORAGE, "Microsoft.Storage/storageAccounts/blobServices/containers").items():
        assert resource_body(container)["properties"]["publicAccess"] == "None", name


def _queue_names() -> set[str]:
    (queues,) = resources(STORAGE, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    loop = queues["config"]["loop_type"]["detail"]
    array = parse(STORAGE)["variables"][loop["array_name"]]["value"]
    assert resource_body(queues)["name"] == loop["item_name"], "each queue must be named by the loop item"
    return {str(resolve(item, STORAGE)) for item in array}


@pytest.mark.parametrize(
    ("main_parameter", "local_setting"),
    [
        ("imageQueueName", "IMAGE_QUEUE_NAME"),
        ("notifyQueueName", "NOTIFY_QUEUE_NAME"),
        ("fanoutQueueName", "FANOUT_QUEUE_NAME"),
    ],
)
def test_each_queue_and_its_poison_queue_is_created(main_parameter: str, local_setting: str) -> None:
    import json

    name = parse(MAIN)["parameters"][main_parameter]["default"]
    assert {name, f"{name}-poison"} <= _queue_names()
    local = json.loads((INFRA.parent / "local.settings.json").read_text())["Values"]
    if local_setting in local:  # the local default and the template's default name one queue
        assert local[local_setting] == name


def test_the_output_container_is_created_with_the_configured_name() -> None:
    containers = resources(STORAGE, "Microsoft.Storage/storageAccounts/blobServices/containers")
    names = {resolve(resource_body(c)["name"], STORAGE) for c in containers.values()}
    assert parse(MAIN)["parameters"]["outputContainerName"]["default"] in names


def test_flex_consumption_python_311_with_identity_deployment_storage() -> None:
    path = MODULES / "functionapp.bicep"
    plan = only_resource(path, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = only_resource(path, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["keyVaultReferenceIdentity"] == "identityId"
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"


def test_sql_accepts_only_entra_and_audits() -> None:
    path = MODULES / "sql.bicep"
    server = only_resource(path, "Microsoft.Sql/servers")["properties"]
    assert server["administrators"]["azureADOnlyAuthentication"] is True
    assert server["minimalTlsVersion"] == "1.2"
    assert "administratorLoginPassword" not in server
    auditing = only_resource(path, "Microsoft.Sql/servers/auditingSettings")["properties"]
    assert auditing["state"] == "Enabled" and auditing["isAzureMonitorTargetEnabled"] is True


def test_redis_is_tls_only_with_entra_auth() -> None:
    path = MODULES / "redis.bicep"
    cache = only_resource(path, "Microsoft.Cache/redis")["properties"]
    assert cache["enableNonSslPort"] is False
    assert cache["minimumTlsVersion"] == "1.2"
    assert cache["disableAccessKeyAuthentication"] is True
    assert {k.strip("'"): v for k, v in cache["redisConfiguration"].items()}["aad-enabled"] == "true"
    policy = only_resource(path, "Microsoft.Cache/redis/accessPolicyAssignments")["properties"]
    assert policy["accessPolicyName"] == "Data Contributor"  # no @dangerous commands (FLUSHALL, KEYS)


def test_managed_redis_alternative_is_tls_only_with_entra_auth_and_unclustered() -> None:
    path = MODULES / "managed-redis.bicep"
    assert only_resource(path, "Microsoft.Cache/redisEnterprise")["properties"]["minimumTlsVersion"] == "1.2"
    database = only_resource(path, "Microsoft.Cache/redisEnterprise/databases")["properties"]
    assert database["clientProtocol"] == "Encrypted"
    assert database["accessKeysAuthentication"] == "Disabled"
    # The fan-in script touches three keys of a request in one call: no cross-slot refusals.
    assert database["clusteringPolicy"] == "NoCluster"
    policy = only_resource(path, "Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments")
    assert policy["properties"]["user"]["objectId"] == "appPrincipalId"
    allowed = next(d for d in parse(MAIN)["parameters"]["redisService"]["decorators"] if d["type"] == "allowed")
    assert set(allowed["argument"]) == {"cache", "managedRedis"}


def test_key_vault_uses_rbac_and_holds_the_webhook_secret() -> None:
    path = MODULES / "keyvault.bicep"
    vault = only_resource(path, "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enablePurgeProtection"] is True
    assert "accessPolicies" not in vault
    secret = only_resource(path, "Microsoft.KeyVault/vaults/secrets")
    assert resolve(secret["name"], path) == "webhook-secret"


def test_application_insights_accepts_only_entra_telemetry() -> None:
    component = only_resource(MODULES / "monitoring.bicep", "Microsoft.Insights/components")["properties"]
    assert component["DisableLocalAuth"] is True
    assert component["WorkspaceResourceId"]


ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Blob Delegator": "db58b8e5-c6ad-4a2a-8342-4190687cbf4a",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}


def test_the_app_identity_holds_exactly_the_roles_the_app_uses() -> None:
    path = MODULES / "rbac.bicep"
    roles = parse(path)["variables"]["roles"]["value"]
    granted = set()
    for name, assignment in resources(path, "Microsoft.Authorization/roleAssignments").items():
        props = resource_body(assignment)["properties"]
        if props["principalId"] != "appPrincipalId":
            continue
        # roleDefinitionId is subscriptionResourceId(..., roles.<key>): find which key it names.
        text = repr(props["roleDefinitionId"])
        keys = [key for key in roles if key in text]
        assert len(keys) == 1, f"{name}: cannot tell its role from {text}"
        granted.add(roles[keys[0]])
    assert granted == set(ROLE_IDS.values())


def test_azure_yaml_deploys_the_function_app_and_runs_the_post_provision_hook() -> None:
    import yaml

    spec = yaml.safe_load((INFRA.parent / "azure.yaml").read_text())
    assert spec["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    hook = spec["hooks"]["postprovision"]
    script = INFRA.parent / hook["posix"]["run"]
    assert script.is_file() and script.stat().st_mode & 0o111, f"{script} must exist and be executable"
    site = only_resource(MODULES / "functionapp.bicep", "Microsoft.Web/sites")
    # azd finds the resource to deploy the 'api' service to by this tag: union(tags, {...}).
    extra_tags = site["tags"]["function"]["parameters"]["arg_2"]
    assert {k.strip("'"): v for k, v in extra_tags.items()} == {"azd-service-name": "api"}


def test_the_deploy_workflow_uses_federated_credentials_only() -> None:
    import yaml

    path = INFRA.parent / ".github" / "workflows" / "deploy.yml"
    text = path.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"]["id-token"] == "write"
    assert "secrets." not in text  # no client secret or password: OIDC federation only
    runs = [step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"]]
    assert any("--federated-credential-provider github" in run for run in runs)
    assert any(run.startswith("azd provision") for run in runs)
    assert any(run.startswith("azd deploy") for run in runs)


def test_main_parameters_file_feeds_every_required_parameter_and_no_unknown_one() -> None:
    import json

    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert set(given) <= set(declared), sorted(set(given) - set(declared))
    assert required <= set(given), sorted(required - set(given))
    # The secret is generated once and read back from the vault afterwards, never written here.
    assert given["webhookSecret"]["value"].startswith("$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} ")
    assert any(d["type"] == "secure" for d in declared["webhookSecret"]["decorators"])
