"""One module per page of the app; ``app.py`` runs them through ``st.navigation`` (each executes ``main()``
when run as the page script)."""
