from django.shortcuts import render


def home(request):
    """Landing page until the browsing UI arrives: where the API and its docs are."""
    return render(request, "ui/home.html")
