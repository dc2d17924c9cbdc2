from tests.support.ws_client import WsClient


async def test_connect_and_health(gw) -> None:
    ws = await WsClient.connect(gw.url, token="admin-token")
    try:
        assert ws.hello["protocol"] == 1
        result = await ws.call("health")
        assert "services" in result
    finally:
        await ws.close()
