"""The web console (``shoal serve`` at ``/console``), driven in Debian's
headless Chromium through Selenium against real ``shoal serve`` processes.

The data is the viewer-events workload's ``viewer_events`` table (partition
key ``user_id``, sort key ``ts``, the ``by_content`` index, a stream, TTL on
``expires_at``, PITR and a backup).  What the console shows is checked against
what boto3 reads from the same server; what the console writes is read back
with boto3.  Each test saves screenshots in ``SHOAL_SCREENSHOTS`` (default:
``screenshots/`` under pytest's temporary directory).
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shoal.demo.workload import EventGenerator, table_definitions
from tests.server.console_browser import BrowserUnavailable, ensure_chromium, start_browser, wait_for
from tests.shoal_process import ShoalProcess, root_credentials

NO_RETRY = Config(retries={"max_attempts": 1})
TABLE = "viewer_events"
USER = "u00000007"
BASE_TS = int(time.time() * 1000) - 3_600_000  # recent: expires_at (90 days on) must not pass, or TTL deletes
EVENTS_OF_USER = 30


def client(url, service="dynamodb", key="console-test", secret="console-test", region="us-east-1"):
    return boto3.client(service, endpoint_url=url, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=NO_RETRY)


def load_viewer_events(ddb) -> list[dict]:
    """The workload's tables: viewer_events with its index, stream, TTL, PITR and a backup, and the other
    two, empty; returns USER's events."""
    definition, *others = table_definitions()
    for other in others:
        ddb.create_table(**other)
    ddb.create_table(**definition, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    ddb.update_continuous_backups(TableName=TABLE,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    events = EventGenerator(seed=17)
    mine = []
    batch = []
    for n in range(120):
        uid = USER if n < EVENTS_OF_USER else f"u{n % 9 + 10:08d}"
        item = events.event(uid, BASE_TS + n * 1000)
        if uid == USER:
            mine.append(item)
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            ddb.batch_write_item(RequestItems={TABLE: batch})
            batch = []
    if batch:
        ddb.batch_write_item(RequestItems={TABLE: batch})
    ddb.create_backup(TableName=TABLE, BackupName="viewer-events-nightly")
    return mine


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    where = os.environ.get("SHOAL_SCREENSHOTS") or str(tmp_path_factory.getbasetemp() / "screenshots")
    os.makedirs(where, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        ensure_chromium()
    except BrowserUnavailable as exc:
        pytest.fail(f"the console's browser tests need Debian's Chromium: {exc}")
    driver = start_browser(str(tmp_path_factory.mktemp("chromium-profile")))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ShoalProcess(tmp_path_factory.mktemp("console")).start()
    ddb = client(proc.url)
    mine = load_viewer_events(ddb)
    yield proc, ddb, mine
    proc.stop()


def shot(driver, screenshots, name, full_page=False):
    """Save a screenshot: of the window, or (``full_page``) of the whole page, the window grown to fit it."""
    if not full_page:
        driver.save_screenshot(os.path.join(screenshots, name))
        return
    size = driver.get_window_size()
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], height + chrome))
    try:
        driver.save_screenshot(os.path.join(screenshots, name))
    finally:
        driver.set_window_size(size["width"], size["height"])


def open_view(driver, url, view):
    """Load the console at ``#/<view>``: a fresh page (a change of the hash alone would not load one), the
    tab's sessionStorage kept."""
    driver.get("about:blank")
    driver.get(f"{url}/console/#/{view}")
    wait_for(lambda: driver.execute_script("return window.shoalConsole && window.shoalConsole.ready"),
             what="the console to start")


def css(driver, selector):
    return driver.find_element("css selector", selector)


def all_css(driver, selector):
    return driver.find_elements("css selector", selector)


def texts(driver, selector):
    return [e.text for e in all_css(driver, selector)]


def rows(driver, table_selector):
    return [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in all_css(driver, f"{table_selector} tbody tr")]


def set_value(driver, element, value):
    driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))",
                          element, value)


def choose(driver, selector, value):
    set_value(driver, css(driver, selector), value)


def error_shown(driver, within):
    box = wait_for(lambda: [e for e in all_css(driver, f"{within} .error") if e.is_displayed()],
                   what=f"an error in {within}")[0]
    return box.find_element("css selector", ".error-type").text, box.find_element("css selector", ".error-message").text


def section_facts(driver, card, title):
    """The facts (term: value) of one section of a table's card, by its heading."""
    section = driver.find_element("xpath", f"//article[@data-table='{TABLE}']//section[h3[text()='{title}']]")
    return {dt.text: dd.text for dt, dd in zip(section.find_elements("css selector", "dt"),
                                               section.find_elements("css selector", "dd"))}


def utc_text(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_bytes(n):
    """A size as the console writes it (ui.js formatBytes)."""
    units, value, i = ["B", "KB", "MB", "GB", "TB"], float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{int(n)} B" if i == 0 else f"{value:.{2 if value < 10 else 1}f} {units[i]}"


def api_error(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


# -- static files: no browser needed --------------------------------------------------------------


def get(url, path, headers=None):
    host, port = url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_static_files_types_caching_and_no_traversal(server):
    proc, _, _ = server
    status, headers, _ = get(proc.url, "/console")
    assert (status, headers["location"]) == (301, "/console/")
    status, headers, body = get(proc.url, "/console/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="js/app.js">' in body
    assert headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in headers["content-security-policy"]
    for path, kind in (("/console/js/app.js", "text/javascript; charset=utf-8"),
                       ("/console/console.css", "text/css; charset=utf-8"),
                       ("/console/favicon.svg", "image/svg+xml"),
                       ("/console/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
                       ("/console/vendor/uPlot.LICENSE", "text/plain; charset=utf-8")):
        status, headers, body = get(proc.url, path)
        assert (status, headers["content-type"]) == (200, kind), path
        assert body
    status, headers, _ = get(proc.url, "/console/js/app.js")
    assert get(proc.url, "/console/js/app.js", {"If-None-Match": headers["etag"]})[:1] == (304,)
    assert get(proc.url, "/console/js/app.js", {"If-None-Match": '"other"'})[0] == 200
    assert get(proc.url, "/console/index.html?x=1")[0] == 200
    for path in ("/console/../pyproject.toml", "/console/%2e%2e/__init__.py", "/console/js/..%2f..%2f__init__.py",
                 "/console/js/%2e%2e/%2e%2e/__init__.py", "/console/js//app.js", "/console/js\\app.js",
                 "/console/nothing.html", "/console/js", "/console/%ff", "/console/js/app.js%00",
                 "/consolex", "/console/__init__.py"):
        status, _, body = get(proc.url, path)
        assert status == 404, path
        assert b"import" not in body


def test_no_console_answers_404(tmp_path):
    proc = ShoalProcess(tmp_path, "--no-console").start()
    try:
        for path in ("/console", "/console/", "/console/js/app.js"):
            assert get(proc.url, path)[0] == 404, path
        assert get(proc.url, "/")[0] == 200  # the server itself serves
    finally:
        proc.stop()


# -- the browser ------------------------------------------------------------------------------------


def test_sha256_and_hmac_written_in_javascript_match_python(server, browser):
    """The fallback signer, used where the page has no WebCrypto (plain HTTP off localhost)."""
    import hashlib
    import hmac

    proc, _, _ = server
    open_view(browser, proc.url, "tables")
    messages = ["", "abc", "a" * 55, "b" * 56, "c" * 64, "é€𝄞" * 40, "x" * 1000]
    got = browser.execute_async_script("""
        const [messages, done] = arguments;
        import("/console/js/sigv4.js").then((m) => {
          const enc = new TextEncoder();
          done(messages.map((s) => [m.hex(m.sha256Js(enc.encode(s))),
                                    m.hex(m.hmacJs(enc.encode("key-" + s), enc.encode(s)))]));
        });""", messages)
    assert got == [[hashlib.sha256(s.encode()).hexdigest(),
                    hmac.new(("key-" + s).encode(), s.encode(), "sha256").hexdigest()] for s in messages]


def test_signature_is_botocores(server, browser):
    """The console's SigV4 (canonical request, scope, key derivation) gives botocore's signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    proc, _, _ = server
    open_view(browser, proc.url, "tables")
    host = proc.url.split("//", 1)[1]
    body = json.dumps({"TableName": TABLE, "Key": {"user_id": {"S": "zoë  two  spaces"}}}, ensure_ascii=False)
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    for service, token in (("dynamodb", ""), ("monitoring", "FwoGZXIvYXdzEXAMPLE/token+x=")):
        signed = browser.execute_async_script("""
            const [host, headers, body, service, token, done] = arguments;
            import("/console/js/sigv4.js").then(async (m) => done(await m.sign({
              host, headers, body, service, region: "eu-west-3", date: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
              credentials: { accessKeyId: "AKIDCONSOLE", secretAccessKey: "s3cr3t/+key", sessionToken: token } })));""",
            host, headers, body, service, token)
        auth = SigV4Auth(Credentials("AKIDCONSOLE", "s3cr3t/+key", token or None), service, "eu-west-3")
        request = AWSRequest(method="POST", url=proc.url + "/", data=body.encode(), headers=dict(headers))
        request.context["timestamp"] = "20260102T030405Z"
        request.headers["X-Amz-Date"] = "20260102T030405Z"
        if token:
            request.headers["X-Amz-Security-Token"] = token
        signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        names = auth.signed_headers(auth.headers_to_sign(request))
        assert signed["Authorization"] == (f"AWS4-HMAC-SHA256 Credential=AKIDCONSOLE/20260102/eu-west-3/{service}/"
                                           f"aws4_request, SignedHeaders={names}, Signature={signature}")
        assert signed["X-Amz-Date"] == "20260102T030405Z"
        assert signed.get("X-Amz-Security-Token") == (token or None)


def test_tables_page_shows_schema_indexes_and_state(server, browser, screenshots):
    proc, ddb, _ = server
    open_view(browser, proc.url, "tables")
    card = f'article[data-table="{TABLE}"]'
    wait_for(lambda: all_css(browser, card), what="the viewer_events card")
    assert rows(browser, f"{card} .key-schema") == [
        ["user_id", "Partition key (HASH)", "S · String"], ["ts", "Sort key (RANGE)", "N · Number"]]
    table = ddb.describe_table(TableName=TABLE)["Table"]
    names = {"S": "String", "N": "Number"}
    assert rows(browser, f"{card} .attribute-definitions") == [
        [a["AttributeName"], f"{a['AttributeType']} · {names[a['AttributeType']]}"] for a in table["AttributeDefinitions"]]
    assert sorted(rows(browser, f"{card} .attribute-definitions")) == [
        ["content_id", "S · String"], ["ts", "N · Number"], ["user_id", "S · String"]]
    index = table["GlobalSecondaryIndexes"][0]
    assert rows(browser, f"{card} .indexes") == [[
        "by_content", "Global", "content_id (partition, S) + ts (sort, N)", "INCLUDE event_type, position_s",
        "ACTIVE", f"{index['ItemCount']:,}", format_bytes(index["IndexSizeBytes"]), "On-demand"]]
    overview, stream, ttl, pitr = (section_facts(browser, card, title) for title in (
        "Overview", "Stream", "Time to live", "Point-in-time recovery"))
    assert overview["Items"] == f"{table['ItemCount']:,}"  # DynamoDB refreshes it about every six hours
    assert overview["Capacity"] == "On-demand"
    assert stream == {"Enabled": "ENABLED", "View type": "NEW_AND_OLD_IMAGES", "Label": table["LatestStreamLabel"]}
    assert ttl == {"Status": "ENABLED", "Attribute": "expires_at"}
    described = ddb.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    recovery = described["PointInTimeRecoveryDescription"]
    latest = pitr.pop("Latest restorable")  # moves with the clock: between the earliest and boto3's, read after
    assert utc_text(recovery["EarliestRestorableDateTime"]) <= latest <= utc_text(recovery["LatestRestorableDateTime"])
    assert pitr == {"Status": "ENABLED", "Earliest restorable": utc_text(recovery["EarliestRestorableDateTime"]),
                    "Recovery period": f"{recovery['RecoveryPeriodInDays']} days",
                    "Continuous backups": described["ContinuousBackupsStatus"]}
    assert css(browser, f"{card} [data-backups]").get_attribute("data-backups") == "1"
    summary = {row[0]: row for row in rows(browser, "#tables-summary")}
    assert sorted(summary) == ["continue_watching", "title_counters", TABLE]
    assert summary[TABLE][:5] == [TABLE, "ACTIVE", "user_id (partition, S) + ts (sort, N)", "1", f"{table['ItemCount']:,}"]
    shot(browser, screenshots, "console-tables.png", full_page=True)


def run_query(driver, user, sort_op="", sort_value="", order="forward"):
    css(driver, "#mode-query").click()
    set_value(driver, css(driver, "#pk-value"), user)
    choose(driver, "#sk-op", sort_op)
    if sort_value:
        set_value(driver, css(driver, "#sk-value"), sort_value)
    choose(driver, "#order", order)
    driver.execute_script("document.querySelector('#items-status').replaceChildren()")
    css(driver, "#run").click()
    wait_for(lambda: all_css(driver, "#items-status #result-line, #items-status .error"), what="the query's answer")


def keys_shown(driver):
    return [json.loads(tr.get_attribute("data-key")) for tr in all_css(driver, "#items-results tbody tr")]


def test_item_browser_query_finds_items(server, browser, screenshots):
    proc, ddb, mine = server
    open_view(browser, proc.url, f"items/{TABLE}")
    wait_for(lambda: all_css(browser, "#items-results tbody tr"), what="the first scan page")
    # The latest events first, as a user's "latest N" query.
    run_query(browser, USER, order="backward")
    expected = ddb.query(TableName=TABLE, KeyConditionExpression="user_id = :u", Limit=25, ScanIndexForward=False,
                         ExpressionAttributeValues={":u": {"S": USER}})
    assert keys_shown(browser) == [{"user_id": i["user_id"], "ts": i["ts"]} for i in expected["Items"]]
    assert css(browser, "#result-line").text.startswith("Query: 25 items returned, 25 evaluated")
    shot(browser, screenshots, "console-items.png", full_page=True)
    # Paging: the next page holds the user's 5 oldest events, then back.
    css(browser, "#next-page").click()
    wait_for(lambda: len(keys_shown(browser)) == EVENTS_OF_USER - 25, what="the second page")
    assert keys_shown(browser) == [{"user_id": i["user_id"], "ts": i["ts"]} for i in reversed(mine[:5])]
    css(browser, "#previous-page").click()
    wait_for(lambda: len(keys_shown(browser)) == 25, what="the first page again")
    # One known event, by its sort key.
    known = mine[3]
    run_query(browser, USER, "=", known["ts"]["N"])
    assert keys_shown(browser) == [{"user_id": known["user_id"], "ts": known["ts"]}]
    header = [th.text for th in all_css(browser, "#items-results thead th")]
    cells = dict(zip(header, [td.text for td in all_css(browser, "#items-results tbody td")]))
    assert cells["content_id"] == known["content_id"]["S"] and cells["event_type"] == known["event_type"]["S"]
    # BETWEEN on the sort key.
    run_query(browser, USER, "BETWEEN", mine[2]["ts"]["N"])
    set_value(browser, css(browser, "#sk-value2"), mine[5]["ts"]["N"])
    css(browser, "#run").click()
    wait_for(lambda: keys_shown(browser) == [{"user_id": i["user_id"], "ts": i["ts"]} for i in mine[2:6]],
             what="the BETWEEN query")
    # The by_content index: its own partition key.
    choose(browser, "#index-select", "by_content")
    assert css(browser, "#pk-value").find_element("xpath", "..").text.startswith("Partition key content_id (S)")
    run_query(browser, known["content_id"]["S"])
    expected = ddb.query(TableName=TABLE, IndexName="by_content", KeyConditionExpression="content_id = :c",
                         ExpressionAttributeValues={":c": known["content_id"]}, Limit=25)
    assert keys_shown(browser) == [{"user_id": i["user_id"], "ts": i["ts"]} for i in expected["Items"]]
    assert known["ts"] in [k["ts"] for k in keys_shown(browser)]
    choose(browser, "#index-select", "")
    # A filter expression the API refuses: its error as the API sends it.
    set_value(browser, css(browser, "#filter-expression"), "#nope = :nope")
    browser.execute_script("document.querySelector('#items-status').replaceChildren()")
    css(browser, "#run").click()
    shown = error_shown(browser, "#items-status")
    assert shown == api_error(ddb.query, TableName=TABLE, KeyConditionExpression="user_id = :u",
                              FilterExpression="#nope = :nope", ExpressionAttributeValues={":u": {"S": USER}})
    set_value(browser, css(browser, "#filter-expression"), "")


def open_item_editor(driver, button_selector):
    css(driver, button_selector).click()
    return wait_for(lambda: css(driver, "#item-json"), what="the item editor")


def save_item(driver, text):
    set_value(driver, css(driver, "#item-json"), text)
    css(driver, "#save-item").click()


def test_create_edit_and_delete_items(server, browser, screenshots):
    proc, ddb, _ = server
    open_view(browser, proc.url, f"items/{TABLE}")
    wait_for(lambda: all_css(browser, "#items-results tbody tr"), what="the first scan page")
    key = {"user_id": {"S": "u99999999"}, "ts": {"N": str(BASE_TS + 123)}}
    created = {**key, "event_type": {"S": "play"}, "content_id": {"S": "c000042"}, "tags": {"SS": ["drama", "kids"]}}
    open_item_editor(browser, "#new-item")
    assert json.loads(css(browser, "#item-json").get_attribute("value")) == {"user_id": {"S": ""}, "ts": {"N": "0"}}
    save_item(browser, json.dumps(created))
    wait_for(lambda: not all_css(browser, "#item-json"), what="the editor to close")
    notice = wait_for(lambda: css(browser, "#items-status .notice")).text
    assert ddb.get_item(TableName=TABLE, Key=key)["Item"] == created
    twin = {**created, "ts": {"N": str(BASE_TS + 124)}}  # a new item like it, with its index entry: table + GSI
    units = ddb.put_item(TableName=TABLE, Item=twin, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    ddb.delete_item(TableName=TABLE, Key={k: twin[k] for k in key})
    assert notice == f"Item saved with PutItem ({units['CapacityUnits']:g} WCU)." == "Item saved with PutItem (2 WCU)."

    run_query(browser, "u99999999")
    assert keys_shown(browser) == [key]
    css(browser, "#items-results .edit-item").click()
    editor = wait_for(lambda: css(browser, "#item-json"), what="the item editor")
    assert json.loads(editor.get_attribute("value")) == created
    edited = {**created, "event_type": {"S": "pause"}, "position_s": {"N": "12.5"}}
    shot(browser, screenshots, "console-item-editor.png")
    save_item(browser, json.dumps(edited, indent=2))
    wait_for(lambda: not all_css(browser, "#item-json"), what="the editor to close")
    assert ddb.get_item(TableName=TABLE, Key=key)["Item"] == edited

    wait_for(lambda: keys_shown(browser) == [key], what="the list to refresh")
    css(browser, "#items-results .delete-item").click()
    wait_for(lambda: css(browser, "#confirm-delete"), what="the delete confirmation").click()
    wait_for(lambda: not all_css(browser, "#confirm-delete"), what="the confirmation to close")
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=key)
    wait_for(lambda: all_css(browser, "#no-items"), what="the list to show no items")


def test_invalid_items_get_the_api_errors(server, browser, screenshots):
    proc, ddb, _ = server
    open_view(browser, proc.url, f"items/{TABLE}")
    wait_for(lambda: all_css(browser, "#items-results tbody tr"), what="the first scan page")
    open_item_editor(browser, "#new-item")
    save_item(browser, '{"user_id": {"S": "u1"}, "ts": {"N": "1"},')
    box = wait_for(lambda: css(browser, "#item-message .error"), what="the error")
    assert box.find_element("css selector", ".error-type").text == "SerializationException"
    assert css(browser, "#item-message .hint").text.startswith("The text is not valid JSON: ")
    shot(browser, screenshots, "console-invalid-json.png")
    # Valid JSON that is not a valid item: the API's type and message, as boto3 gets them.
    save_item(browser, '{"ts": {"N": "1"}}')
    wait_for(lambda: not all_css(browser, "#item-message .hint"), what="the second answer")
    shown = error_shown(browser, "#item-message")
    assert shown == api_error(ddb.put_item, TableName=TABLE, Item={"ts": {"N": "1"}})
    assert shown[0] == "ValidationException"
    save_item(browser, '{"user_id": {"S": "u1"}, "ts": {"N": "not a number"}}')
    wait_for(lambda: error_shown(browser, "#item-message") != shown, what="the third answer")
    assert error_shown(browser, "#item-message") == api_error(
        ddb.put_item, TableName=TABLE, Item={"user_id": {"S": "u1"}, "ts": {"N": "not a number"}})
    css(browser, ".modal .icon-button").click()
    # The server keeps serving, the console too.
    assert TABLE in ddb.list_tables()["TableNames"]
    run_query(browser, USER)
    assert len(keys_shown(browser)) == 25


def chart_points(driver, chart_id):
    """Non-null points per series of a chart, as uPlot holds them."""
    return driver.execute_script("""
        const u = window.shoalConsole.charts[arguments[0]];
        if (!u) return null;
        return u.series.slice(1).map((s, i) => [s.label, u.data[i + 1].filter((v) => v != null).length,
                                               u.data[i + 1].reduce((a, v) => a + (v || 0), 0)]);""", chart_id)


def test_metrics_chart_draws_points(server, browser, screenshots):
    proc, ddb, _ = server
    for n in range(20):  # reads and writes of known sizes, on top of the load
        ddb.put_item(TableName=TABLE, Item={"user_id": {"S": "u77777777"}, "ts": {"N": str(n)}})
        ddb.get_item(TableName=TABLE, Key={"user_id": {"S": "u77777777"}, "ts": {"N": str(n)}})
    open_view(browser, proc.url, f"metrics/{TABLE}")
    points = wait_for(lambda: (chart_points(browser, "capacity") or [[None, 0]])[1][1] > 0
                      and chart_points(browser, "capacity"), timeout=15, what="consumed capacity points")
    labels = [label for label, _, _ in points]
    assert labels[:2] == ["Read", "Write"]
    operations = {"GetItem", "PutItem", "BatchWriteItem"}

    def latency_of_each_operation():
        """One series per operation (ListMetrics lists an operation once its first figures are flushed)."""
        average = {label: count for label, count, _ in chart_points(browser, "latency-average") or []}
        p99 = {label: count for label, count, _ in chart_points(browser, "latency-p99") or []}
        if all(average.get(op, 0) > 0 and p99.get(op, 0) > 0 for op in operations):
            return True
        css(browser, "#refresh").click()
        time.sleep(0.3)

    wait_for(latency_of_each_operation, timeout=15, what="latency series of " + ", ".join(sorted(operations)))
    # What the chart holds is what GetMetricData answers for the same periods.
    cw = client(proc.url, "cloudwatch")

    def same_as_api():
        css(browser, "#refresh").click()
        time.sleep(0.3)
        xs = browser.execute_script("return window.shoalConsole.charts.capacity.data[0]")
        period = xs[1] - xs[0]
        answer = cw.get_metric_data(
            MetricDataQueries=[{"Id": "w", "MetricStat": {"Metric": {
                "Namespace": "AWS/DynamoDB", "MetricName": "ConsumedWriteCapacityUnits",
                "Dimensions": [{"Name": "TableName", "Value": TABLE}]}, "Period": period, "Stat": "Sum"}}],
            StartTime=datetime.datetime.fromtimestamp(xs[0], datetime.timezone.utc),
            EndTime=datetime.datetime.fromtimestamp(xs[-1] + period, datetime.timezone.utc))
        total = sum(answer["MetricDataResults"][0]["Values"])
        return total > 0 and chart_points(browser, "capacity")[1][2] == total

    wait_for(same_as_api, timeout=15, interval=0.5, what="the chart to hold the API's figures")
    assert css(browser, "#live").is_selected()
    shot(browser, screenshots, "console-chart.png", full_page=True)
    # A week: hourly periods (at most 500 points a chart), from the start of the range's first hour.
    choose(browser, "#range", "604800")
    wait_for(lambda: css(browser, "#metrics-updated").text.endswith("period 60 min"), what="a week's chart")
    xs = browser.execute_script("return window.shoalConsole.charts.capacity.data[0]")
    assert {b - a for a, b in zip(xs, xs[1:])} == {3600} and xs[0] % 3600 == 0 and len(xs) in (168, 169)
    assert chart_points(browser, "capacity")[1][1] > 0
    # A custom range of the last two hours: minutes again.
    choose(browser, "#range", "custom")
    now = datetime.datetime.now()  # datetime-local fields hold the browser's local time, the machine's
    set_value(browser, css(browser, "#range-from"), (now - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    set_value(browser, css(browser, "#range-to"), (now + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"))
    wait_for(lambda: css(browser, "#metrics-updated").text.endswith("period 1 min")
             and browser.execute_script("return window.shoalConsole.charts.capacity.data[0].length") == 122  # 2 h 1 min, both ends
             and chart_points(browser, "capacity")[1][1] > 0, what="the custom range")
    choose(browser, "#range", "3600")


def test_alarms_view_shows_what_the_api_answers(server, browser, screenshots):
    proc, _, _ = server
    cw = client(proc.url, "cloudwatch")
    try:
        cw.put_metric_alarm(AlarmName="viewer-events-writes", Namespace="AWS/DynamoDB",
                            MetricName="ConsumedWriteCapacityUnits", Statistic="Sum", Period=60,
                            Dimensions=[{"Name": "TableName", "Value": TABLE}], EvaluationPeriods=1,
                            Threshold=1000, ComparisonOperator="GreaterThanThreshold")
        expected = cw.describe_alarms()
        refused = None
    except ClientError as exc:
        refused = exc.response["Error"]["Code"], exc.response["Error"]["Message"]
    open_view(browser, proc.url, "alarms")
    if refused is not None:  # the alarm operations are not on this server yet: the console says what the API says
        assert refused[0] == "InvalidAction"
        assert error_shown(browser, "#alarms-status") == api_error(cw.describe_alarms)
    else:
        wait_for(lambda: all_css(browser, "#alarms-table tbody tr"), what="the alarms")
        assert [tr.get_attribute("data-alarm") for tr in all_css(browser, "#alarms-table tbody tr")] == \
            [a["AlarmName"] for a in expected["MetricAlarms"]]
        row = css(browser, '#alarms-table tr[data-alarm="viewer-events-writes"]')
        alarm = next(a for a in expected["MetricAlarms"] if a["AlarmName"] == "viewer-events-writes")
        cells = [td.text for td in row.find_elements("css selector", "td")]
        assert cells[1:5] == [alarm["StateValue"], alarm["StateReason"],
                              "AWS/DynamoDB/ConsumedWriteCapacityUnits (TableName=viewer_events) · Sum per 60 s",
                              "> 1000 for 1 of 1"]
        row.find_element("css selector", "button").click()
        wait_for(lambda: all_css(browser, "#history-table tbody tr, #alarm-history .error"), what="the history")
        history = cw.describe_alarm_history(AlarmName="viewer-events-writes")["AlarmHistoryItems"]
        assert texts(browser, "#history-table tbody td:nth-child(3)") == [i["HistorySummary"] for i in history]
    shot(browser, screenshots, "console-alarms.png")


# -- with --auth sigv4 --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("console-secured")
    proc = ShoalProcess(data_dir, "--auth", "sigv4").start()
    key, secret = root_credentials(data_dir)
    root = client(proc.url, key=key, secret=secret)
    root.create_table(TableName="accounts", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST")
    root.put_item(TableName="accounts", Item={"id": {"S": "a1"}, "plan": {"S": "pro"}})
    yield proc, data_dir, root, key, secret
    proc.stop()


def iam(data_dir, *args):
    out = subprocess.run([sys.executable, "-m", "shoal", "iam", *args, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def sign_in(driver, key, secret):
    wait_for(lambda: css(driver, "#access-key-id").is_displayed(), what="the sign-in form")
    driver.execute_script("document.querySelector('.sign-in-message').replaceChildren()")
    for selector, value in (("#access-key-id", key), ("#secret-access-key", secret)):
        field = css(driver, selector)
        field.clear()
        field.send_keys(value)
    css(driver, "#sign-in").click()


def test_sign_in_with_sigv4_and_policies_apply(secured, browser, screenshots):
    proc, data_dir, root, key, secret = secured
    open_view(browser, proc.url, "tables")
    wait_for(lambda: css(browser, "#sign-in"), what="the sign-in form")
    assert not all_css(browser, ".error")  # that auth is on is no error
    sign_in(browser, key, "wrong-secret")
    refused = error_shown(browser, ".sign-in-message")
    assert refused == api_error(client(proc.url, key=key, secret="wrong-secret").list_tables)
    assert refused[0] == "InvalidSignatureException"
    shot(browser, screenshots, "console-sign-in-refused.png")
    sign_in(browser, key, secret)
    wait_for(lambda: all_css(browser, 'article[data-table="accounts"]'), what="the tables after sign-in")
    assert css(browser, ".session-user").text == key
    assert browser.execute_script("return sessionStorage.getItem('shoal.console.credentials')") is not None
    assert browser.execute_script("return localStorage.length") == 0
    # CloudWatch's API, signed for "monitoring", works for the root user too.
    open_view(browser, proc.url, "metrics/accounts")
    wait_for(lambda: css(browser, "#metrics-updated").text.startswith("Updated"), what="the metrics")
    assert not all_css(browser, "#metrics-status .error")

    # A user whose policy denies DeleteItem: the console shows the API's refusal.
    iam(data_dir, "create-user", "--user-name", "support")
    access = iam(data_dir, "create-access-key", "--user-name", "support")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}]}
    iam(data_dir, "put-user-policy", "--user-name", "support", "--policy-name", "no-deletes",
        "--policy-document", json.dumps(policy))
    css(browser, "#sign-out").click()
    sign_in(browser, access["AccessKeyId"], access["SecretAccessKey"])
    wait_for(lambda: css(browser, ".session-user").text == access["AccessKeyId"], what="support signed in")
    open_view(browser, proc.url, "items/accounts")
    wait_for(lambda: all_css(browser, "#items-results .delete-item"), what="the items")
    css(browser, "#items-results .delete-item").click()
    wait_for(lambda: css(browser, "#confirm-delete"), what="the delete confirmation").click()
    shown = error_shown(browser, "#delete-message")
    support = client(proc.url, key=access["AccessKeyId"], secret=access["SecretAccessKey"])
    assert shown == api_error(support.delete_item, TableName="accounts", Key={"id": {"S": "a1"}})
    assert shown[0] == "AccessDeniedException"
    assert "is not authorized to perform: dynamodb:DeleteItem" in shown[1]
    shot(browser, screenshots, "console-access-denied.png")
    assert root.get_item(TableName="accounts", Key={"id": {"S": "a1"}})["Item"]["plan"] == {"S": "pro"}

    # A key deleted while signed in: the next call is refused, and the console asks to sign in again.
    css(browser, ".modal .icon-button").click()
    iam(data_dir, "delete-access-key", "--access-key-id", access["AccessKeyId"])

    def asked_to_sign_in():  # the server notices IAM changes made by another process within 5 seconds
        if all_css(browser, "#sign-in"):
            return True
        css(browser, "#run").click()
        time.sleep(0.5)

    wait_for(asked_to_sign_in, timeout=10, what="the sign-in form again")

    def refused_to_boto3():  # each worker process notices within its own 5 seconds
        try:
            support.list_tables()
        except ClientError as exc:
            return exc.response["Error"]["Code"], exc.response["Error"]["Message"]

    assert error_shown(browser, ".sign-in-message") == wait_for(refused_to_boto3, what="boto3 refused too")
    assert error_shown(browser, ".sign-in-message")[0] == "UnrecognizedClientException"
    assert browser.execute_script("return sessionStorage.getItem('shoal.console.credentials')") is None
