"""The API's views, one module per resource; ``base.QStashView`` holds what they share."""
