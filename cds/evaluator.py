"""The domain pipeline: request context + gathered data -> plan -> facts -> engine -> cards.

Built once per process (``build_evaluator``); ``evaluate`` does no file or rule parsing.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cds.cards.actions import ActionContext
from cds.cards.render import CardContext, build_cards
from cds.config import Settings
from cds.engine.durable import DurableEngine, Match
from cds.errors import RuleLoadError
from cds.facts.build import build_facts
from cds.facts.context import PHASE_BY_HOOK, FactContext, Plan
from cds.facts.drugs import KapDrugs
from cds.facts.fhir import r4b_model, ref
from cds.facts.index import PrefetchIndex
from cds.facts.plan import find_plan
from cds.facts.sanitize import MALFORMED_DATA, check_context_resources, retry_without_malformed
from cds.facts.triage import Triage, triage
from cds.fhir.tolerate import tolerate_all
from cds.hooks.registry import service
from cds.pipeline_types import Evaluation, FiredRule, PatientData
from cds.ruleset.checklist import WINDOW_POLICY_KEY
from cds.ruleset.loader import LoadedRuleSet, load_ruleset
from cds.ruleset.valuesets import ValueSetIndex

logger = logging.getLogger(__name__)


# The resource types fact builders validate (fhir.resources imports each model lazily, ~0.1 s).
READ_TYPES = (
    "Patient",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "Medication",
    "Observation",
    "Procedure",
    "Consent",
    "Appointment",
    "Encounter",
)

# Fact types built before validation when no rule of the hook negates them (see _match).
DEFERRABLE_FACTS = frozenset({"condition"})

# Value sets the fact builders name in code (rule files name theirs; the loader checks those).
REQUIRED_VALUESETS = (
    "VS-KETAMINE",
    "VS-ESKETAMINE",
    "VS-MDD-SI",
    "VS-INFERTILITY",
    "VS-HYSTERECTOMY",
    "VS-REMS-PATIENT-ID",
    "VS-CONSENT-REMS",
    "VS-PUERPERIUM",
)


class RuleEvaluator:
    def __init__(self, ruleset: LoadedRuleSet, timezone: str = "UTC") -> None:
        missing = [vs for vs in REQUIRED_VALUESETS if vs not in ruleset.valuesets]
        if missing:
            raise RuleLoadError(
                str(ruleset.directory / "valuesets"),
                None,
                None,
                f"required value sets missing: {', '.join(missing)}",
            )
        self.ruleset = ruleset
        self.tz = ZoneInfo(timezone)
        self.index = ValueSetIndex(ruleset.valuesets, ruleset.valueset_files)
        for resource_type in READ_TYPES:
            r4b_model(resource_type)  # import the models now, not in the first clinical call
        self.drugs = KapDrugs(ruleset.valuesets["VS-KETAMINE"], ruleset.valuesets["VS-ESKETAMINE"])
        self.engine = DurableEngine(
            {_engine_name(h): {v.key: v.durable for v in vs} for h, vs in ruleset.compiled.items()},
            {
                _engine_name(h): frozenset().union(*(v.negated_types for v in vs))
                for h, vs in ruleset.compiled.items()
            },
        )

    def with_timezone(self, timezone: str) -> RuleEvaluator:
        """The same rule set and engine judging days in another facility zone (rule fixtures
        of a clinic in another zone); the engine holds no zone, so sharing it is safe."""
        other = copy.copy(self)
        other.tz = ZoneInfo(timezone)
        return other

    @property
    def prefetch_templates(self) -> dict[str, str]:
        """Narrow prefetch templates for this rule set's value sets (see cds.fhir.narrow)."""
        from cds.fhir.narrow import narrow_templates

        return narrow_templates(self.ruleset.valueset_files)

    @property
    def ruleset_info(self) -> dict[str, Any]:
        return {
            "digest": self.ruleset.digest,
            "rules": len(self.ruleset.active_rules),
            "shadow": len(self.ruleset.shadow_rules),
            "version": self.ruleset.digest[:12],
        }

    def evaluate(
        self, *, service_id: str, context: dict[str, Any], data: PatientData, now: datetime
    ) -> Evaluation:
        hook = service(service_id).hook
        try:
            return self._evaluate(hook, context, data, now, [])
        except MALFORMED_DATA as exc:
            # Never the message: it may quote patient data.
            logger.info(
                "malformed FHIR in a %s request (%s): retrying without invalid resources",
                hook,
                type(exc).__name__,
            )
            # Rare path: repair harmless shape deviations everywhere, then set aside what is
            # still not valid FHIR R4 (named on the data card): first what the failing builder
            # was reading, the whole chart only if that does not clear it.
            tolerate_all(r for resources in data.resources.values() for r in resources)
            check_context_resources(context)  # a malformed order or appointment: HTTP 400
            return retry_without_malformed(
                lambda clean, removed: self._evaluate(hook, context, clean, now, removed),
                data,
                exc,
            )

    def triage(self, hook: str, context: dict[str, Any]) -> Triage:
        try:
            return triage(hook, context, self.drugs)
        except MALFORMED_DATA:
            check_context_resources(context)  # a malformed order or appointment: HTTP 400
            raise

    def _evaluate(
        self,
        hook: str,
        context: dict[str, Any],
        data: PatientData,
        now: datetime,
        removed: list[tuple[str, str]],
    ) -> Evaluation:
        ctx = self._context(hook, context, data, now, None, now)
        plan = find_plan(ctx, self.drugs, now)
        if plan is None:
            return Evaluation([], [], now, False, self.ruleset.digest)
        ctx, matches = self._match(hook, context, data, plan, now, ctx.data_index, removed)
        if ctx.invalid and _repair_shapes(data, ctx.invalid):
            # Some resources the rules read were only misshapen (one object where R4 has a
            # list): repaired in place, so evaluate again (a new index: validity has changed).
            # Costs nothing for well-formed data.
            ctx, matches = self._match(hook, context, data, plan, now, self._index(data), removed)
        action_ctx = ActionContext(
            patient_id=ctx.patient_id,
            t0=plan.t0,
            order_ref=ref(plan.order) if plan.order and hook.startswith("order-") else None,
            encounter_id=context.get("encounterId"),
        )
        card_ctx = CardContext(
            actions=action_ctx,
            drug=plan.drug,
            now=now,
            tz=self.tz,
            near=self._dose_is_near(hook, plan.t0, now),
        )
        live = [m for m in matches if not self.ruleset.is_shadow(_rule_of(m))]
        cards, fired = build_cards(live, self.ruleset, card_ctx)
        shadow = self._would_fire(matches, len(live), card_ctx)
        return Evaluation(cards, fired, plan.t0, True, self.ruleset.digest, shadow)

    def _match(
        self,
        hook: str,
        context: dict[str, Any],
        data: PatientData,
        plan: Plan,
        now: datetime,
        prefetch: PrefetchIndex,
        removed: list[tuple[str, str]],
    ) -> tuple[FactContext, list[Match]]:
        """Build the facts and run the rules. Facts of a type no rule of the hook negates are
        built before their resource is validated (``FactContext.valid_once_matched``); the
        resources behind the facts a rule matched are validated after the run, and if one is
        not valid FHIR R4 the evaluation runs again without it (and names it on the data card).
        Such a fact can only make a rule fire, so the rules fire exactly as if every resource
        had been validated first, and invalid data that no rule reads costs nothing."""
        engine_name = _engine_name(hook)
        deferrable = DEFERRABLE_FACTS - self.engine.negated_types(engine_name)
        while True:
            ctx = self._context(hook, context, data, plan.t0, plan, now, prefetch)
            ctx.invalid.extend(removed)
            ctx.deferrable = deferrable
            matches = self.engine.run(engine_name, build_facts(ctx))
            matched = {f["ref"] for m in matches for f in m.facts.values() if "ref" in f}
            for resource_ref in sorted(matched & ctx.pending.keys()):
                ctx.confirm(resource_ref)
            if not ctx.rejected_late:
                return ctx, matches
            # Again: the shared index now knows these resources are invalid. Each round
            # validates at least one more resource, so this ends.

    def _would_fire(
        self, matches: list[Match], live_count: int, card_ctx: CardContext
    ) -> list[FiredRule]:
        """Shadow rules' firings as the EHR would have seen them: built together with the live
        rules so that a live rule's ``suppressed_by`` applies, then only the shadow ones kept."""
        if live_count == len(matches):
            return []
        _cards, fired = build_cards(matches, self.ruleset, card_ctx)
        return [f for f in fired if self.ruleset.is_shadow(f.rule_id)]

    def _dose_is_near(self, hook: str, t0: datetime, now: datetime) -> bool:
        """The readiness checklist's "near": the dosing encounter has started, or an order or
        booking is for a dose within the policy window (rules/readiness.yaml)."""
        phase = PHASE_BY_HOOK[hook]
        if phase == "session":
            return True
        if phase not in ("order", "book") or WINDOW_POLICY_KEY not in self.ruleset.policy.values:
            return False
        hours_ahead = (t0 - now).total_seconds() / 3600
        return hours_ahead <= self.ruleset.policy.number(WINDOW_POLICY_KEY)

    def facts_for(
        self, service_id: str, context: dict[str, Any], data: PatientData, now: datetime
    ) -> list[dict[str, Any]]:
        """The facts an evaluation would post (for `kap-cds evaluate --facts` and tests)."""
        hook = service(service_id).hook
        first = self._context(hook, context, data, now, None, now)
        plan = find_plan(first, self.drugs, now)
        if plan is None:
            return []
        return build_facts(self._context(hook, context, data, plan.t0, plan, now, first.prefetch))

    def _index(self, data: PatientData) -> PrefetchIndex:
        return PrefetchIndex(data, self.tz, self.ruleset.valuesets, self.index)

    def _context(
        self,
        hook: str,
        context: dict[str, Any],
        data: PatientData,
        t0: datetime,
        plan: Plan | None,
        now: datetime,
        prefetch: PrefetchIndex | None = None,
    ) -> FactContext:
        return FactContext(
            hook=hook,
            context=context,
            data=data,
            t0=t0.astimezone(self.tz),
            tz=self.tz,
            policy=self.ruleset.policy,
            valuesets=self.ruleset.valuesets,
            plan=plan,
            index=self.index,
            # One pass over the data per request, shared by the plan and the fact builders.
            prefetch=prefetch or self._index(data),
            now=now,
            planned_time=plan.timed if plan else False,
        )


def _rule_of(match: Match) -> str:
    return match.key.partition("#")[0]


def _engine_name(hook: str) -> str:
    return hook.replace("-", "_")


def build_evaluator(settings: Settings) -> RuleEvaluator:
    ruleset = load_ruleset(settings.rules_dir, settings.policy_file, settings.valueset_overlay)
    return RuleEvaluator(ruleset, settings.facility_zone)


def _repair_shapes(data: PatientData, invalid: list[tuple[str, str]]) -> bool:
    """Repair the shape of the resources reported invalid; whether any was changed."""
    refs = {resource_ref for resource_ref, _problem in invalid}
    types = {resource_ref.split("/")[0] for resource_ref in refs}
    suspects = (r for t in types for r in data.of_type(t) if ref(r) in refs)
    return tolerate_all(suspects) > 0
