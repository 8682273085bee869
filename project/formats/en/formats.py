"""English formats: one date-time format on every page, naming its time zone.

Django looks here first for the active language ('en-us' falls back to 'en') and takes what
is not defined here from its own English formats. 'M' is the month without Django's
Associated Press full stop ('Dec', never 'Dec.'), 'H:i' the 24-hour clock, 'T' the zone's
abbreviation in QUOTAS_TIME_ZONE ('UTC', 'CET'): "Dec 1, 2026 16:03 UTC".
"""

DATETIME_FORMAT = "M j, Y H:i T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "M j, Y"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i T"
MONTH_DAY_FORMAT = "M j"
YEAR_MONTH_FORMAT = "M Y"
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
