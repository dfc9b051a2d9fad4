"""A trained model as a service on Ray Serve: ``vaegan-dist serve``, or ``serve run vaegan_dist.serve.app:app``.

    http.py          the FastAPI ingress: checks requests, answers PNG or JSON, the page at /
    model_server.py  the model deployment: one method per endpoint, encode/decode batched across requests
    face_model.py    the model ready for requests: loading, attribute vectors, codes for each endpoint
    page.py          the face-editing page (templates/), with its Content-Security-Policy
    app.py           the application: both deployments bound, from a checkpoint and scaling settings
    run.py           what the CLI does: checks, then serve (or write a config for `serve deploy`)
"""
