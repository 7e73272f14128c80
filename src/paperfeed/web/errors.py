"""Error pages: HTML for browsers, JSON error objects under /api/."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from paperfeed.web.deps import render


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "Error"
        if _wants_json(request):
            return JSONResponse(
                {"error": {"status": exc.status_code, "message": detail}},
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return render(
            request, "error.html", {"status": exc.status_code, "message": detail}, exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(x) for x in e.get("loc", ())], "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        if _wants_json(request):
            return JSONResponse(
                {"error": {"status": 422, "message": "Invalid request", "details": errors}},
                status_code=422,
            )
        message = "; ".join(f"{'.'.join(e['loc'][1:])}: {e['message']}" for e in errors)
        return render(request, "error.html", {"status": 422, "message": message}, 422)

    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: DataError) -> Response:
        # Only input can cause it (PostgreSQL refuses e.g. an id beyond 2^31 that SQLite
        # accepts): whatever such an id names does not exist.
        message = "Not found: a number in the address is out of range."
        if _wants_json(request):
            return JSONResponse({"error": {"status": 404, "message": message}}, status_code=404)
        return render(request, "error.html", {"status": 404, "message": message}, 404)
