import json
from tests import factories
from tests.canvas.conftest import canvas_url, save
from deals.models import Visibility


def test_print(cast, written):
    c = cast.client("owner")
    for n in ["Harbor Point Apartments", "Harbor View Lofts", "Harbor Yards"]:
        factories.make_deal(cast.org, owner=cast.users["owner"], name=n, visibility=Visibility.ORG)
    out = []
    r = c.get("/api/dashboard/memos?q=harbor&ordering=name&page_size=2")
    out.append(("dash1", r.status_code, r.content.decode()))
    r2 = c.get(r.json()["next"])
    out.append(("dash2", r2.status_code, r2.content.decode()))
    for q in ["page_size=0", "page_size=9223372036854775808", "cursor=garbage", "page=2"]:
        r = c.get("/api/dashboard/memos?" + q)
        out.append((q, r.status_code, r.content.decode()))
    swapped = r2.json()["previous"].replace("ordering=name", "ordering=created")
    r = c.get(swapped)
    out.append(("swapped", r.status_code, r.content.decode()))
    e = cast.client("editor")
    g = e.get(canvas_url(cast.deal))
    out.append(("get headers", g.status_code, json.dumps({k: g[k] for k in ("ETag", "Cache-Control", "Vary")})))
    nm = e.get(canvas_url(cast.deal), HTTP_IF_NONE_MATCH=g["ETag"])
    out.append(("304", nm.status_code, json.dumps(dict(nm.items())) + " body=" + repr(nm.content)))
    s = e.post(canvas_url(cast.deal, "save"), {"content": "## Risks\n\nRates may rise."}, format="json", HTTP_IF_MATCH=g["ETag"])
    out.append(("save if-match", s.status_code, s.content.decode()))
    s = e.post(canvas_url(cast.deal, "save"), {"content": "## Risks\n\nMine."}, format="json", HTTP_IF_MATCH=g["ETag"])
    out.append(("save stale", s.status_code, s.content.decode() + " ETag=" + s.get("ETag", "")))
    s = e.post(canvas_url(cast.deal, "save"), {"content": "## Risks\n\nMine.", "base_version": 1}, format="json", HTTP_IF_MATCH=e.get(canvas_url(cast.deal))["ETag"])
    out.append(("disagree", s.status_code, s.content.decode()))
    v = e.get(canvas_url(cast.deal, "versions?page_size=1"))
    out.append(("versions", v.status_code, v.content.decode()[:600] + " ETag=" + v["ETag"]))
    with open("/tmp/docsgen/out.txt", "w") as f:
        for name, st, body in out:
            f.write(f"== {name} {st}\n{body}\n")
