"""The settings console under ``/admin`` (off unless admin tokens are configured).

:mod:`.auth` tokens, session and CSRF; :mod:`.settings_form` the Global
Settings form (pure); :mod:`.workflow_file` the comment-keeping file editor;
:mod:`.probe` Test a lead; :mod:`.connections` the Connections page;
:mod:`.app` the routes. Reloading the running workflow is
:mod:`dupcheck_plugin.server.reload`.
"""
