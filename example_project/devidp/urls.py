from django.urls import path

from . import views

app_name = "devidp"

urlpatterns = [
    path("", views.about, name="about"),
    path(".well-known/openid-configuration", views.discovery, name="discovery"),
    path(".well-known/jwks", views.jwks, name="jwks"),
    path("token", views.token, name="token"),
]
