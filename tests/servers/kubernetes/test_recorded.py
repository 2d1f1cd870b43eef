"""The recorded responses the fake API server replays are shapes the official client itself
accepts: each is deserialized into the client's own model (which validates required fields
and types), so a response we wrote wrongly fails here rather than passing the tool tests."""

from __future__ import annotations

import orjson
import pytest
from kubernetes.aio.client import ApiClient

from tests.servers.kubernetes import recorded

MODELS = [
    ("CORE_V1", "V1APIResourceList"),
    ("APPS_V1", "V1APIResourceList"),
    ("BATCH_V1", "V1APIResourceList"),
    ("EVENTS_V1", "V1APIResourceList"),
    ("CRD_V1", "V1APIResourceList"),
    ("GROUPS", "V1APIGroupList"),
    ("PODS_PAGE_1", "V1PodList"),
    ("PODS_PAGE_2", "V1PodList"),
    ("POD_WEB_0", "V1Pod"),
    ("DEPLOYMENT_WEB", "V1Deployment"),
    ("DEPLOYMENTS", "V1DeploymentList"),
    ("SCALE_WEB", "V1Scale"),
    ("SECRET_DB", "V1Secret"),
    ("EVENTS", "CoreV1EventList"),
    ("NOT_FOUND", "V1Status"),
    ("FORBIDDEN", "V1Status"),
    ("EXPIRED", "V1Status"),
    ("CONTAINER_NEEDED", "V1Status"),
    ("UNAVAILABLE", "V1Status"),
]


@pytest.mark.parametrize(("name", "model"), MODELS, ids=[n for n, _ in MODELS])
def test_each_recorded_response_is_a_valid_client_model(name: str, model: str) -> None:
    found = ApiClient().deserialize(
        orjson.dumps(getattr(recorded, name)).decode(), model, "application/json"
    )
    assert type(found).__name__ == model


def test_the_check_would_catch_a_wrong_shape() -> None:
    wrong = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [{"name": "pods"}]}
    with pytest.raises(ValueError, match="validation error"):
        ApiClient().deserialize(
            orjson.dumps(wrong).decode(), "V1APIResourceList", "application/json"
        )
