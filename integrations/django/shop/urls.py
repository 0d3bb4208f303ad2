from django.urls import path

from . import views

urlpatterns = [
    path("price/<int:pk>", views.queryset_update),
    path("bulk", views.bulk),
    path("raw", views.raw),
    path("create", views.create),
]
