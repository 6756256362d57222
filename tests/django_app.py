"""The Django views the Django tests drive (ROOT_URLCONF of tests.django_setup)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path


def count(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({k: request.session[k] for k in request.session.keys()  # noqa: SIM118
                         if not k.startswith("_")})


def write(request: HttpRequest) -> HttpResponse:
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def do_login(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST["username"],
                        password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    messages.success(request, f"Welcome, {user.get_username()}")
    return HttpResponse("in")


def do_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("out")


def me(request: HttpRequest) -> HttpResponse:
    user = request.user
    names = [str(m) for m in messages.get_messages(request)]
    return JsonResponse({"user": user.get_username() if user.is_authenticated else None,
                         "messages": names, "key": request.session.session_key})


def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_token(request))


def post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted")


def remember(request: HttpRequest) -> HttpResponse:
    request.session["r"] = 1
    request.session.set_expiry(int(request.GET["seconds"]))
    return HttpResponse("ok")


def logged_out_meanwhile(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0)  # loaded
    # A concurrent request (a logout elsewhere) deletes this session before this one saves.
    type(request.session)(request.session.session_key).delete()
    request.session["n"] += 1
    return HttpResponse("saved?")


urlpatterns = [
    path("race", logged_out_meanwhile),
    path("count", count),
    path("read", read),
    path("write", write),
    path("login", do_login),
    path("logout", do_logout),
    path("me", me),
    path("form", form),
    path("post", post),
    path("remember", remember),
]
