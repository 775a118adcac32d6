from django.urls import path
app_name = "trusted_publishing"
urlpatterns: list = []
