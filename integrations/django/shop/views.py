from django.db import connection, transaction
from django.http import HttpResponse

from .models import Customer


def queryset_update(request, pk):
    """Autocommit: one UPDATE, no transaction opened by the view."""
    Customer.objects.filter(pk=pk).update(price=request.POST["price"])
    return HttpResponse("ok")


def bulk(request):
    """bulk_update inside atomic, after a savepoint that rolls back."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                Customer.objects.filter(pk=1).update(name="rolled back")
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        rows = list(Customer.objects.order_by("pk"))
        for c in rows:
            c.name = c.name + "!"
        Customer.objects.bulk_update(rows, ["name"])
    return HttpResponse("ok")


def raw(request):
    """Raw SQL, with a literal % and no parameters."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE shop_customer SET name = name || '%' WHERE id = 2")
    return HttpResponse("ok")


def create(request):
    c = Customer.objects.create(name=request.POST["name"], price="1.00", password="pw")
    return HttpResponse(str(c.pk))
