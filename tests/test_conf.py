"""
The settings object (accounts.conf): defaults, the older names, and changes.
"""

from django.conf import settings as project_settings

from accounts.conf import conf


def test_a_setting_left_unset_gives_its_default_until_the_project_sets_it(settings):
    assert not hasattr(project_settings, "ACCOUNTS_BATCH_MAX_SIZE")
    assert conf.BATCH_MAX_SIZE == 1000
    assert conf.BATCH_MAX_SIZE == 1000  # the miss is remembered, the answer the same
    settings.ACCOUNTS_BATCH_MAX_SIZE = 5
    assert conf.BATCH_MAX_SIZE == 5
    del settings.ACCOUNTS_BATCH_MAX_SIZE
    assert conf.BATCH_MAX_SIZE == 1000


def test_an_older_setting_name_is_read_when_the_current_one_is_unset(settings):
    assert conf.EXPIRED_NAME == "Expired accounts"
    settings.ACCOUNTS_LAPSED_NAME = "Lapsed"
    assert conf.EXPIRED_NAME == "Lapsed"
    settings.ACCOUNTS_EXPIRED_NAME = "Expired"
    assert conf.EXPIRED_NAME == "Expired"  # the current name wins
    del settings.ACCOUNTS_EXPIRED_NAME
    del settings.ACCOUNTS_LAPSED_NAME
    assert conf.EXPIRED_NAME == "Expired accounts"
