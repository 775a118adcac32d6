"""The Simple Repository API (PEP 503 HTML, PEP 691 JSON, PEP 700 fields) and file downloads.

Reads are anonymous in this example; a real private index would put its read authentication
(e.g. HTTP Basic with Django users or read tokens) in front of these views.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db.models import Prefetch
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.html import escape, format_html
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from trusted_publishing.names import normalize_project_name

from .models import File, Project

API_VERSION = "1.1"
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
#: media type → (format, content type we answer with)
_OFFERS: dict[str, tuple[str, str]] = {
    JSON: ("json", JSON),
    "application/vnd.pypi.simple.latest+json": ("json", JSON),
    HTML: ("html", HTML),
    "application/vnd.pypi.simple.latest+html": ("html", HTML),
    "text/html": ("html", "text/html"),
    "text/*": ("html", "text/html"),
    "*/*": ("html", "text/html"),
}


def negotiate(request: HttpRequest) -> tuple[str, str] | None:
    """PEP 691 content negotiation: (format, content type), or None for 406.

    The ``?format=`` query parameter (PEP 691's optional URL form) wins over the Accept header.
    Among acceptable types the highest quality wins; ties go to the one listed first.
    """
    accept = request.GET.get("format") or request.headers.get("Accept") or "*/*"
    best: tuple[float, int, tuple[str, str]] | None = None
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offer = _OFFERS.get(media.lower())
        if offer is None or quality <= 0:
            continue
        if best is None or quality > best[0] or (quality == best[0] and position < best[1]):
            best = (quality, position, offer)
    return best[2] if best else None


def _respond(request: HttpRequest, json_body: dict, html_title: str,
             html_body: Iterable[str]) -> HttpResponse:
    chosen = negotiate(request)
    if chosen is None:
        return HttpResponse(
            f"Not acceptable. Ask for {JSON}, {HTML} or text/html.\n", status=406,
            content_type="text/plain; charset=utf-8",
        )
    kind, content_type = chosen
    if kind == "json":
        body = json.dumps({"meta": {"api-version": API_VERSION}, **json_body})
    else:
        body = (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            f"    <title>{escape(html_title)}</title>\n  </head>\n  <body>\n"
            f"    <h1>{escape(html_title)}</h1>\n"
            + "".join(f"    {line}<br>\n" for line in html_body)
            + "  </body>\n</html>\n"
        )
    return HttpResponse(body, content_type=f"{content_type}; charset=utf-8"
                        if kind == "html" else content_type)


@require_GET
@vary_on_headers("Accept")
def simple_root(request: HttpRequest) -> HttpResponse:
    projects = list(Project.objects.values_list("name", "normalized_name"))
    return _respond(
        request,
        {"projects": [{"name": name} for name, _ in projects]},
        "Simple index",
        (format_html('<a href="{}">{}</a>', reverse("index:simple-project", args=[slug]), name)
         for name, slug in projects),
    )


def _file_json(file: File) -> dict:
    return {
        "filename": file.filename,
        "url": file.get_absolute_url(),
        "hashes": {"sha256": file.sha256, "blake2b_256": file.blake2_256},
        "requires-python": file.requires_python or None,
        "size": file.size,
        "upload-time": file.uploaded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "yanked": False,
    }


@require_GET
@vary_on_headers("Accept")
def simple_project(request: HttpRequest, project: str) -> HttpResponse:
    normalized = normalize_project_name(project)
    if normalized != project:
        # PEP 503: one canonical URL per project; clients follow the redirect.
        url = reverse("index:simple-project", args=[normalized])
        if request.META.get("QUERY_STRING"):
            url += "?" + request.META["QUERY_STRING"]
        return HttpResponsePermanentRedirect(url)
    record = get_object_or_404(
        Project.objects.prefetch_related(
            Prefetch("releases__files", queryset=File.objects.order_by("filename"))
        ),
        normalized_name=normalized,
    )
    files = sorted(
        (file for release in record.releases.all() for file in release.files.all()),
        key=lambda file: file.filename,
    )
    versions = sorted({release.version for release in record.releases.all()})
    links = []
    for file in files:
        href = f"{file.get_absolute_url()}#sha256={file.sha256}"
        if file.requires_python:
            links.append(format_html('<a href="{}" data-requires-python="{}">{}</a>', href,
                                     file.requires_python, file.filename))
        else:
            links.append(format_html('<a href="{}">{}</a>', href, file.filename))
    return _respond(
        request,
        {"name": normalized, "versions": versions, "files": [_file_json(f) for f in files]},
        f"Links for {record.name}",
        links,
    )


@require_GET
def download(request: HttpRequest, project: str, filename: str) -> FileResponse:
    file = get_object_or_404(
        File.objects.select_related("release__project"),
        filename=filename,
        release__project__normalized_name=project,
    )
    try:
        handle = file.content.open("rb")
    except FileNotFoundError:
        raise Http404("File missing from storage") from None
    response = FileResponse(handle, content_type="application/octet-stream",
                            as_attachment=True, filename=file.filename)
    response["X-Content-SHA256"] = file.sha256
    return response


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """A landing page pointing at what there is to see."""
    links = [
        ("Simple index", reverse("index:simple-root")),
        ("Admin (projects, files, trusted publishers, audit log)", reverse("admin:index")),
    ]
    items = "".join(format_html('<li><a href="{}">{}</a></li>', url, text) for text, url in links)
    return HttpResponse(
        "<!DOCTYPE html><html><head><title>Example index</title></head><body>"
        "<h1>Example package index</h1>"
        "<p>Upload URL: <code>" + escape(request.build_absolute_uri(reverse("index:upload")))
        + "</code></p><ul>" + items + "</ul></body></html>"
    )
