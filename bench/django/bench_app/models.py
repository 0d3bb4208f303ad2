from django.db import models


class Order(models.Model):
    number = models.IntegerField()
    note = models.TextField()
