"""The WeCom sidebar (聊天工具栏) at /sidebar/: OAuth sign-in, the JS-SDK signature, the customer 360 and group
view, and the salesperson's actions (tags, notes, orders). Mount it with :func:`scrm.web.sidebar.web.setup_routes`."""
