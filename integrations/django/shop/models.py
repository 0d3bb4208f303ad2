from django.db import models


class Customer(models.Model):
    name = models.TextField()
    price = models.DecimalField(max_digits=10, decimal_places=2)
    password = models.TextField(default="")

    class Meta:
        db_table = "shop_customer"
        app_label = "shop"
