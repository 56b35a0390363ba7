"""How docs/images/homeassistant-device.png was made: a device page of a running Home Assistant,
shot by headless Chromium (Debian package `chromium`) over the DevTools protocol.

Run with Home Assistant's Python (it has aiohttp), against a Home Assistant whose MQTT
integration points at pyiot's broker (`pyiot run devices/nad_amplifier.iot --simulate
--homeassistant`), with a user made by `hass --script auth -c DIR add USER PASSWORD`:

    .ha-venv/bin/python docs/images/homeassistant_screenshot.py http://127.0.0.1:8123 \
        USER PASSWORD switch.amp_power docs/images/homeassistant-device.png

It logs in through Home Assistant's login flow, stores the tokens where the frontend looks for
them (localStorage `hassTokens`), opens the entity's device page and captures it.
"""
import asyncio, base64, json, subprocess, sys, tempfile, time, urllib.parse, urllib.request

base, user, password, entity, out = sys.argv[1:6]

def post(path, data, form=False, token=None):
    body = urllib.parse.urlencode(data).encode() if form else json.dumps(data).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(base + path, body, headers)) as r:
        text = r.read().decode()
    return json.loads(text) if text[:1] in "{[" else text

client = base + "/"
flow = post("/auth/login_flow", {"client_id": client, "handler": ["homeassistant", None], "redirect_uri": client})
done = post(f"/auth/login_flow/{flow['flow_id']}", {"client_id": client, "username": user, "password": password})
tokens = post("/auth/token", {"grant_type": "authorization_code", "code": done["result"], "client_id": client}, form=True)
device = post("/api/template", {"template": f"{{{{ device_id('{entity}') }}}}"}, token=tokens["access_token"])
stored = {**tokens, "hassUrl": base, "clientId": client, "expires": int(time.time() * 1000) + tokens["expires_in"] * 1000}

async def main():
    import aiohttp
    profile = tempfile.mkdtemp()
    chrome = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
        "--remote-debugging-port=9333", f"--user-data-dir={profile}", "--window-size=1280,860",
        "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get("http://127.0.0.1:9333/json") as r:
                        pages = [p for p in await r.json() if p["type"] == "page"]
                        if pages:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
            ids = iter(range(1, 10**6))
            async def cdp(method, **params):
                n = next(ids)
                await ws.send_json({"id": n, "method": method, "params": params})
                while True:
                    msg = await ws.receive_json()
                    if msg.get("id") == n:
                        return msg.get("result", {})
            await cdp("Page.enable")
            await cdp("Emulation.setDeviceMetricsOverride", width=1280, height=860, deviceScaleFactor=1, mobile=False)
            await cdp("Page.navigate", url=base + "/manifest.json")
            await asyncio.sleep(2)
            await cdp("Runtime.evaluate", expression=f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(stored))}); localStorage.setItem('selectedTheme', JSON.stringify({{theme: 'default', dark: false}}))")
            await cdp("Page.navigate", url=f"{base}/config/devices/device/{device}")
            await asyncio.sleep(15)
            shot = await cdp("Page.captureScreenshot", format="png")
            open(out, "wb").write(base64.b64decode(shot["data"]))
    finally:
        chrome.terminate()
        chrome.wait()

asyncio.run(main())
print(out, device)
