from django.contrib import admin
from django.contrib.auth import authenticate, login, logout
from django.http import HttpResponse
from django.urls import path

from .notes.models import Note


def sign_in(request):
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    return HttpResponse("ok")


def sign_out(request):
    logout(request)
    return HttpResponse("ok")


def add_note(request):
    # A unique title given twice fails the INSERT: the request's write is
    # rolled back and the exception reaches the middleware.
    Note.objects.create(title=request.POST["title"])
    return HttpResponse("ok")


def rename(request):
    Note.objects.filter(title=request.POST["title"]).update(body=request.POST["body"])
    return HttpResponse("ok")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("sign-in", sign_in),
    path("sign-out", sign_out),
    path("notes", add_note, name="add_note"),
    path("rename", rename),
]
