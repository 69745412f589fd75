import pytest
@pytest.mark.parametrize("i", range(20))
def test_smoke(client, i):
    http, tok = client
    assert http.get("/api/jobs/", headers=tok.headers()).status_code == 200
