"""Muster's Chalice app: wiring only. Each blueprint is one kind of entry point;
the work happens in chalicelib/services."""

from chalice import Chalice, ConvertToMiddleware

from chalicelib.blueprints.announcements import announcements_bp
from chalicelib.blueprints.api import api
from chalicelib.blueprints.controls import controls_bp
from chalicelib.blueprints.delivery import delivery
from chalicelib.blueprints.feedback import feedback_bp
from chalicelib.blueprints.files import files_bp
from chalicelib.blueprints.inbound import inbound
from chalicelib.blueprints.integration import integration
from chalicelib.blueprints.kpis_api import kpis_bp
from chalicelib.blueprints.mute import mute_bp
from chalicelib.blueprints.nextsteps import nextsteps_bp
from chalicelib.blueprints.private import private_bp
from chalicelib.blueprints.scheduling import scheduling
from chalicelib.blueprints.sms import sms_bp
from chalicelib.blueprints.stewardship_api import stewardship_api
from chalicelib.blueprints.suppressions import suppressions_bp
from chalicelib.observability import logger, metrics
from chalicelib.services import signals

app = Chalice(app_name="muster")
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(signals.middleware)  # integration events: to the outbox after the work (issue 11)
app.register_blueprint(api)
app.register_blueprint(integration)
app.register_blueprint(scheduling)
app.register_blueprint(delivery)
app.register_blueprint(inbound)
app.register_blueprint(feedback_bp)
app.register_blueprint(mute_bp)
app.register_blueprint(controls_bp)
app.register_blueprint(stewardship_api)
app.register_blueprint(suppressions_bp)
app.register_blueprint(private_bp)
app.register_blueprint(files_bp)
app.register_blueprint(nextsteps_bp)
app.register_blueprint(announcements_bp)
app.register_blueprint(sms_bp)
app.register_blueprint(kpis_bp)
