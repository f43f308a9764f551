"""The web console in a real headless browser (Debian's chromium through chromedriver), over the
sample corpus: a citation marker opens its passage with exactly the cited quote highlighted, a
reader key sees no admin view, and an hr-only document never reaches another group's screen.

Screenshots are kept under tests/artifacts/ (ignored by git); each test prints its path.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import launch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "data" / "samples"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
HR_DOC = "hr-policy.pdf"
QUESTION = "How long is the VPN certificate valid?"


def test_page_and_assets_are_served_without_a_key(live):
    page = httpx.get(live.base_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"] and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        response = httpx.get(f"{live.base_url}/console/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert httpx.get(live.base_url + "/console/../app.py").status_code == 404
    paths = httpx.get(live.base_url + "/schema/openapi.json").json()["paths"]
    assert "/" not in paths and "/v1/me" in paths and "/v1/ingest-jobs" in paths and "/v1/indexes" in paths


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A server over data/samples: the HR policy in the hr group only, everything else public."""
    if not SAMPLES.is_dir():
        pytest.skip("data/samples is absent")
    server = launch(tmp_path_factory.mktemp("console"), ingest=False, ingest_roots=[SAMPLES])
    gw = server.groundwork
    public = [p for p in sorted(SAMPLES.iterdir()) if p.name not in ("README.md", HR_DOC)]
    gw.ingest(public, collection="default", groups=[], progress=False)
    [hr] = gw.ingest([SAMPLES / HR_DOC], collection="people", groups=["hr"], progress=False).files
    assert hr.status == "added", hr
    gw.refresh_indexes()
    server.hr_document_id = hr.document_id
    yield server
    server.stop()
    gw.close()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (scripts/setup.sh does, as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1360,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout=30):
    """Until ``condition`` holds; an element replaced while it was being read is read again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)


def _by_id(driver, name):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def _sign_in(driver, server, key):
    driver.get(server.base_url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.base_url + "/")
    _wait(driver, lambda d: _by_id(d, "login").is_displayed())
    _by_id(driver, "key-input").send_keys(key)
    _by_id(driver, "login-form").submit()
    _wait(driver, lambda d: _by_id(d, "app").is_displayed())


def _ask(driver, question, view="ask"):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'.tab[data-view="{view}"]').click()
    box = _by_id(driver, "q")
    box.clear()
    box.send_keys(question)
    _by_id(driver, "query-form").submit()


def _shot(driver, name) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_a_citation_opens_its_passage_with_the_quote_highlighted(samples, browser):
    from selenium.webdriver.common.by import By

    key = samples.keys["reader"]
    with samples.client(key) as client:
        expected = client.post("/v1/answer", json={"query": QUESTION}).json()
    assert expected["grounded"] and expected["citations"], expected
    _sign_in(browser, samples, key)
    assert key not in browser.current_url and browser.execute_script("return sessionStorage.getItem('groundwork.key')") == key
    _ask(browser, QUESTION)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#answer .cite"))
    markers = browser.find_elements(By.CSS_SELECTOR, "#answer .cite")
    assert markers
    for marker in markers:
        number, index = int(marker.get_attribute("data-marker")), int(marker.get_attribute("data-index"))
        citation = [c for c in expected["citations"] if c["marker"] == number][index]  # the index-th [n] in the answer
        marker.click()
        _wait(browser, lambda d: "open" in marker.get_attribute("class") and d.find_elements(By.ID, "quote")
              and _by_id(d, "quote").get_attribute("data-marker") == str(number))
        quote = _by_id(browser, "quote")
        assert quote.get_attribute("data-chunk") == str(citation["chunk_id"])
        assert quote.get_attribute("textContent") == citation["quote"]
        marked = {m.get_attribute("textContent") for m in browser.find_elements(By.CSS_SELECTOR, "#passage mark")}
        assert marked <= {c["quote"] for c in expected["citations"] if c["marker"] == number}
        meta = browser.find_element(By.CSS_SELECTOR, "#passage .meta").get_attribute("textContent")
        assert citation["source"] in meta
        title = browser.find_element(By.CSS_SELECTOR, "#passage h3").get_attribute("textContent")
        assert (citation["title"] or citation["source"]) in title
    timings = _by_id(browser, "timings").get_attribute("textContent")
    assert "retrieve" in timings or "search" in timings or "ms" in timings
    first = [c for c in expected["citations"] if c["marker"] == int(markers[0].get_attribute("data-marker"))][0]
    markers[0].click()
    _wait(browser, lambda d: _by_id(d, "quote").get_attribute("textContent") == first["quote"])
    assert _shot(browser, "console-answer").stat().st_size > 10_000
    assert not _by_id(browser, "admin-tab").is_displayed()


def test_a_reader_key_sees_no_admin_view_and_an_admin_key_does(samples, browser):
    from selenium.webdriver.common.by import By

    _sign_in(browser, samples, samples.keys["reader"])
    assert not _by_id(browser, "admin-tab").is_displayed() and not _by_id(browser, "view-admin").is_displayed()
    _sign_in(browser, samples, samples.keys["admin_all"])
    _wait(browser, lambda d: _by_id(d, "admin-tab").is_displayed())
    _by_id(browser, "admin-tab").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-documents tr[data-document]"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#admin-documents tr[data-document]")
    assert len(rows) == len([p for p in SAMPLES.iterdir() if p.name != "README.md"])
    _shot(browser, "console-admin-documents")
    browser.find_element(By.CSS_SELECTOR, '.subtab[data-admin="keys"]').click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#key-list tbody tr"))
    _by_id(browser, "key-name").send_keys("console-made")
    _by_id(browser, "key-form").submit()
    _wait(browser, lambda d: _by_id(d, "key-created").is_displayed())
    made = browser.find_element(By.CSS_SELECTOR, "#key-created strong").get_attribute("textContent")
    assert made.startswith("gw_") and httpx.get(samples.base_url + "/v1/me", headers={"Authorization": f"Bearer {made}"}).json()["name"] == "console-made"
    browser.find_element(By.CSS_SELECTOR, '.subtab[data-admin="indexes"]').click()
    _wait(browser, lambda d: "Live version" in _by_id(d, "admin-indexes").get_attribute("textContent"))
    # Re-ingest from the documents table: the jobs pane opens and follows the job until it is done.
    browser.find_element(By.CSS_SELECTOR, '.subtab[data-admin="documents"]').click()
    runbook = samples.groundwork.store.list_documents(source_prefix=str(SAMPLES / "it-runbook.md"))[0].id
    # Clicked inside the wait: the table is redrawn when its pane opens, which can replace the button.
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'#admin-documents tr[data-document="{runbook}"] button.secondary').click()
          or True)
    _wait(browser, lambda d: _by_id(d, "admin-jobs").is_displayed() and d.find_elements(By.CSS_SELECTOR, "#admin-jobs tr[data-job]"))
    _wait(browser, lambda d: "done" in d.find_element(By.CSS_SELECTOR, "#admin-jobs tr[data-job]").get_attribute("textContent"))
    assert "unchanged 1" in browser.find_element(By.CSS_SELECTOR, "#admin-jobs tr[data-job]").get_attribute("textContent")
    assert not _by_id(browser, "admin-error").get_attribute("textContent")


def test_an_hr_only_document_never_appears_for_another_group(samples, browser):
    from selenium.webdriver.common.by import By

    question = "How many days of paid annual leave do employees accrue?"
    hr = str(samples.hr_document_id)
    for who, sees in (("reader_eng", False), ("reader", False), ("reader_hr", True)):
        _sign_in(browser, samples, samples.keys[who])
        _ask(browser, "annual leave accrue days employees", view="search")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
        shown = [li.get_attribute("data-document") for li in browser.find_elements(By.CSS_SELECTOR, "#results li")]
        page = browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
        assert (hr in shown) is sees and (HR_DOC in page) is sees, who
        _ask(browser, question)
        _wait(browser, lambda d: _by_id(d, "answer").is_displayed() and "Answer" in _by_id(d, "answer").get_attribute("textContent"))
        page = browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
        assert (HR_DOC in page) is sees, who
        assert "null" not in _by_id(browser, "answer").get_attribute("textContent")
        if who == "reader_eng":
            _shot(browser, "console-eng-search")


def test_dev_mode_needs_no_key(fresh, browser):
    server = fresh(auth="off")
    browser.get(server.base_url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(server.base_url + "/")
    _wait(browser, lambda d: _by_id(d, "app").is_displayed())
    assert not _by_id(browser, "login").is_displayed() and _by_id(browser, "admin-tab").is_displayed()
    assert "dev mode" in _by_id(browser, "who").get_attribute("textContent")
