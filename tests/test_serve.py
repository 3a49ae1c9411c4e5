"""`xrg serve` end to end: a tiny RaDialog-style LLM checkpoint behind the real command, driven
over HTTP and in headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
`.ci/run`): upload a synthetic study, wait for the report, see a heatmap, ask a follow-up."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from conftest import last_checkpoint, tiny_chain_args
from xrg.cli import main

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, list[Path]]:
    """RaDialog's LLM stage at toy size (findings head + Q-Former + LLM): a report, findings,
    heatmaps and chat; two training steps are enough, the page shows whatever the model says."""
    tmp = tmp_path_factory.mktemp("serve")
    bench, run = tmp / "benchmark", tmp / "run"
    main(["fit", "--config", str(REPO / "recipes/radialog/llm_synthetic.yaml"), *tiny_chain_args(bench, run),
          "--model.init_args.decoder.init_args.max_new_tokens=8", "--trainer.enable_progress_bar=false"])
    study = sorted((bench / "images").iterdir())[0]
    return last_checkpoint(run), sorted(study.glob("*.png"))


@pytest.fixture(scope="module")
def server(checkpoint):
    """`xrg serve` as a user starts it, on a free port, with small upload limits to test."""
    ckpt, _ = checkpoint
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "xrg.cli", "serve", "--ckpt", str(ckpt), "--port", "0",
                                "--max-upload-mb", "1", "--max-images", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    lines = []
    try:
        for line in process.stdout:  # the first line that names the address; the model loads before it
            lines.append(line)
            if match := re.search(r"on (http://127\.0\.0\.1:\d+/)", line):
                break
        else:
            raise AssertionError("xrg serve exited:\n" + "".join(lines))
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _post(url: str, payload: dict | bytes) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def _upload(paths: list[Path]) -> dict:
    return {"images": [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]}


def test_report_findings_heatmaps_and_follow_up_over_http(server, checkpoint):
    _, images = checkpoint
    status, result = _post(server + "api/report", _upload(images))
    assert status == 200, result
    assert isinstance(result["report"], str) and result["chat"] is True
    assert len(result["views"]) == len(images) == 2
    probabilities = [f["probability"] for f in result["findings"]]
    assert len(probabilities) == 14 and all(0 <= p <= 1 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    # A heatmap per scored finding and view, each a PNG.
    assert set(result["heatmaps"]) == {f["name"] for f in result["findings"]}
    png = base64.b64decode(result["heatmaps"]["Cardiomegaly"][0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    status, answer = _post(server + "api/ask", {"study": result["study"], "question": "Is there an effusion?"})
    assert status == 200 and isinstance(answer["answer"], str)


def test_uploads_over_the_limits_are_refused_with_a_reason(server, checkpoint):
    _, images = checkpoint
    status, body = _post(server + "api/report", _upload(images + images[:1]))
    assert status == 413 and "at most 2" in body["error"]
    status, body = _post(server + "api/report", b"x" * (2 * 2**20))
    assert status == 413 and "at most 1 MB" in body["error"]
    status, body = _post(server + "api/report", {"images": [{"name": "a.png", "data": base64.b64encode(b"not an image").decode()}]})
    assert status == 400 and "'a.png'" in body["error"]
    status, body = _post(server + "api/ask", {"study": "nope", "question": "hello?"})
    assert status == 404


def test_localhost_only_by_default():
    from xrg.serve import ModelService, make_server

    server = make_server(ModelService(torch.nn.Identity()), port=0)  # no model call: only the socket
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_the_page_in_chromium(server, checkpoint, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _, images = checkpoint
    wait = WebDriverWait(browser, 45)
    browser.get(server)
    wait.until(lambda d: "ReportGeneration" in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in images))
    browser.find_element(By.ID, "submit").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "status"), "done"))
    assert browser.find_element(By.ID, "status").get_attribute("class") != "error"
    report = browser.find_element(By.ID, "report")
    assert report.is_displayed() and report.text.strip()
    assert len(browser.find_elements(By.CSS_SELECTOR, "img.view")) == 2
    # The heatmap images decoded (naturalWidth > 0), not just tags on the page.
    heatmaps = browser.find_elements(By.CSS_SELECTOR, "#heatmaps img.heatmap")
    assert heatmaps and all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in heatmaps)
    rows = browser.find_elements(By.CSS_SELECTOR, "#findings tr")
    assert len(rows) == 14
    rows[-1].click()  # any finding shows its own heatmap
    caption = browser.find_element(By.CSS_SELECTOR, "#heatmaps figcaption").text
    assert caption.startswith(rows[-1].get_attribute("data-name"))

    assert browser.find_element(By.ID, "chat").is_displayed()
    browser.find_element(By.ID, "question").send_keys("Is there an effusion?")
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#answers p.answer"))
    assert browser.find_element(By.CSS_SELECTOR, "#answers p.q").text == "Is there an effusion?"
    if os.environ.get("XRG_SCREENSHOT"):  # XRG_SCREENSHOT=page.png: to look at the page as the test left it
        rows[0].click()
        browser.save_screenshot(os.environ["XRG_SCREENSHOT"])
