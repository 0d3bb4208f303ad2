from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100, unique=True)
    body = models.TextField(default="")

    def __str__(self):
        return self.title
