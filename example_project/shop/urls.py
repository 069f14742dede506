from django.urls import path

from example_project.shop import views

urlpatterns = [
    path("signup", views.SignupView.as_view(), name="signup"),
    path("login", views.LoginView.as_view(), name="login"),
    path("jobs/<uuid:pk>", views.JobDetailView.as_view(), name="job-detail"),
    path("demo/flaky", views.FlakyDemoView.as_view(), name="demo-flaky"),
    path("demo/django-task", views.DjangoTaskDemoView.as_view(), name="demo-django-task"),
    path("demo/django-task/<uuid:result_id>", views.DjangoTaskDemoView.as_view()),
    path("demo/deliver", views.DeliverDemoView.as_view(), name="demo-deliver"),
    path("jobs/welcome", views.welcome_consumer, name="welcome-consumer"),
]
