"""Schema-driven fuzzing: requests generated from the service's own OpenAPI schema never get a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.service.conftest import launch


@pytest.mark.integration
@pytest.mark.slow
def test_no_server_errors_from_schema_generated_requests(tmp_path):
    server = launch(tmp_path / "fuzz", rate_limit_per_minute=0)
    try:
        schema = schemathesis.openapi.from_url(f"{server.base_url}/schema/openapi.json")
        headers = {"Authorization": f"Bearer {server.keys['admin_all']}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        failures: list[tuple] = []
        for operation in operations:
            @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy())
            def exercise(case):
                response = case.call(base_url=server.base_url, headers=headers, timeout=60)
                if response.status_code >= 500:
                    failures.append((case.method, case.formatted_path, response.status_code, response.text[:300]))

            exercise()
        assert not failures, failures[:5]
    finally:
        server.stop()
        server.groundwork.close()
