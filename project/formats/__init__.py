"""How Django's own admin pages write dates, times and numbers (FORMAT_MODULE_PATH): the same
as the service's own (quotas.display.moment)."""
