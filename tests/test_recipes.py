"Each paper's recipe is the default of its method, shown by `--print-config`, overridable field by field (issue 13)."
import json
import pytest
from conftest import cli


def print_config(env, *params):
    r = cli('method', *params, '--print-config', env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize('method, want', [
    ('finetune_cot', dict(rationale_format='ft_cot_token', prefix_weight=0.0, eval_temperature=0.0, teacher_temperature=0.0,
                          teacher_max_tokens=128, few_shot=False, schedule='finetune_cot', recipe='finetune_cot')),
    ('learn_to_reason', dict(rationale_format='l2r', prefix_weight=0.1, reflection_weight=0.5, reflection_margin=1.0,
                             reflection_repr='last', exam_samples=4, exam_temperature=1.0, exam_top_p=1.0, eval_temperature=0.0,
                             few_shot=True, schedule='learn_to_reason', recipe='learn_to_reason')),
    ('mapd', dict(rationale_format='mapd_rationale', feedback_format='mapd_feedback', alpha=0.5, review_threshold=3.0,
                  exam_temperature=0.3, exam_top_p=0.9, teacher_temperature=0.8, teacher_max_tokens=512,
                  eval_temperature=0.3, eval_top_p=0.9, eval_samples=1, schedule='mapd', recipe='mapd')),
])
def test_print_config_shows_the_papers_values(env, tmp_path, method, want):
    cfg = print_config(env, f'methods={method}', 'student=smollm2-135m')
    assert {k: cfg[k] for k in want} == want
    assert cfg['protocol'] == f"{method} (the paper's own)" and 'methods.md' in cfg['recipe_source']
    from learn_reason.students.train import RECIPES   # a pretrained student takes the paper's schedule
    assert (cfg['learning_rate'], cfg['batch_size'], cfg['epochs']) == tuple(RECIPES[want['schedule']][k] for k in
                                                                           ('learning_rate', 'batch_size', 'epochs'))
    assert not (tmp_path/'runs').exists()   # nothing ran


def test_print_config_shows_an_override_and_the_tiny_schedule(env):
    cfg = print_config(env, 'methods=mapd', 'eval_top_p=0.5', 'alpha=0.25', 'student=tiny-gpt2')
    assert (cfg['eval_top_p'], cfg['alpha'], cfg['eval_temperature']) == (0.5, 0.25, 0.3)
    assert (cfg['learning_rate'], cfg['batch_size'], cfg['epochs']) == (1e-3, 16, 5)   # documented tiny-student override


def test_comparable_shares_format_and_decoding_but_keeps_the_method(env):
    cfg = print_config(env, 'methods=mapd', 'comparable=True', 'review_threshold=4.0')
    assert (cfg['rationale_format'], cfg['eval_temperature'], cfg['exam_temperature'], cfg['schedule']) == \
        ('ft_cot_token', 0.0, 1.0, 'finetune_cot')
    assert (cfg['alpha'], cfg['review_threshold'], cfg['protocol']) == (0.5, 4.0, 'comparable')
    l2r = print_config(env, 'methods=learn_to_reason', 'comparable=True')
    assert (l2r['rationale_format'], l2r['prefix_weight'], l2r['few_shot'], l2r['reflection_weight']) == \
        ('ft_cot_token', 0.0, False, 0.5)


def test_diverse_reasoning_samples_the_teacher_at_0_7(env):
    assert print_config(env, 'methods=diverse', 'diverse=4')['teacher_temperature'] == 0.7
    assert print_config(env, 'methods=finetune_cot')['teacher_temperature'] == 0.0


def test_composed_methods_take_one_recipe(env):
    cfg = print_config(env, "methods=['diverse', 'tailored', 'peer_review', 'feedback']", 'comparable=True')
    assert cfg['recipe'] == 'mapd' and cfg['rationale_format'] == 'ft_cot_token'
