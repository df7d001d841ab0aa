"""Learning-rate sequences of torch.optim.lr_scheduler.ReduceLROnPlateau and OneCycleLR, for Kiln's schedule tests.

Writes test/golden/schedulers.json. Run with /usr/bin/python3 (it has torch):
    /usr/bin/python3 tools/golden/schedulers_ref.py
Each case records its options, the metrics fed (plateau), and per step the lr of every group (and for OneCycle the
momentum or beta1 of group 0). Deterministic: no randomness is involved.
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'golden', 'schedulers.json')


def two_groups(opt_name, lrs=(0.1, 0.01)):
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    groups = [{'params': [a], 'lr': lrs[0]}, {'params': [b], 'lr': lrs[1]}]
    if opt_name == 'sgd':
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return torch.optim.Adam(groups, lr=lrs[0])


# A metric that falls, stalls, wiggles within the threshold, rises, then falls again.
METRICS = [1.0, 0.9, 0.85, 0.85, 0.8501, 0.86, 0.87, 0.84, 0.84, 0.84, 0.84, 0.83, 0.9, 0.95, 0.7, 0.7, 0.7,
           0.7, 0.7, 0.7, 0.69999, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]


def plateau_case(name, options):
    opt = two_groups('sgd')
    kw = {'mode': options.get('mode', 'min'), 'factor': options.get('factor', 0.1),
          'patience': options.get('patience', 10), 'threshold': options.get('threshold', 1e-4),
          'threshold_mode': options.get('thresholdMode', 'rel'), 'cooldown': options.get('cooldown', 0),
          'min_lr': options.get('minLr', 0), 'eps': options.get('eps', 1e-8)}
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    metrics = METRICS if kw['mode'] == 'min' else [-m for m in METRICS]
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append([g['lr'] for g in opt.param_groups])
    return {'name': name, 'options': options, 'initialLrs': [0.1, 0.01], 'metrics': metrics, 'lrs': lrs}


def one_cycle_case(name, opt_name, options, steps):
    opt = two_groups(opt_name)
    kw = {'max_lr': options['maxLr'], 'pct_start': options.get('pctStart', 0.3),
          'anneal_strategy': options.get('annealStrategy', 'cos'), 'div_factor': options.get('divFactor', 25.0),
          'final_div_factor': options.get('finalDivFactor', 1e4), 'three_phase': options.get('threePhase', False),
          'cycle_momentum': options.get('cycleMomentum', True), 'base_momentum': options.get('baseMomentum', 0.85),
          'max_momentum': options.get('maxMomentum', 0.95)}
    if 'totalSteps' in options:
        kw['total_steps'] = options['totalSteps']
    else:
        kw['epochs'] = options['epochs']
        kw['steps_per_epoch'] = options['stepsPerEpoch']
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, **kw)
    lrs, moms = [], []
    for i in range(steps):
        lrs.append([g['lr'] for g in opt.param_groups])
        g0 = opt.param_groups[0]
        moms.append(g0['betas'][0] if 'betas' in g0 else g0['momentum'])
        if i < steps - 1:
            opt.step()
            sched.step()
    return {'name': name, 'optimizer': opt_name, 'options': options, 'lrs': lrs, 'momentum': moms}


def main():
    plateau = [
        plateau_case('defaults-patience-2', {'patience': 2}),
        plateau_case('abs-threshold-cooldown', {'patience': 1, 'threshold': 0.01, 'thresholdMode': 'abs', 'cooldown': 2,
                                                'factor': 0.5}),
        plateau_case('max-mode-min-lr', {'mode': 'max', 'patience': 0, 'factor': 0.3, 'minLr': [0.005, 0.002]}),
        plateau_case('eps-stops-tiny-steps', {'patience': 0, 'factor': 0.5, 'eps': 0.004}),
        plateau_case('rel-threshold-big', {'patience': 1, 'threshold': 0.1}),
    ]
    one_cycle = [
        one_cycle_case('cos-sgd', 'sgd', {'maxLr': 1.0, 'totalSteps': 20}, 20),
        one_cycle_case('linear-adam-groups', 'adam', {'maxLr': [0.5, 0.05], 'totalSteps': 17, 'annealStrategy': 'linear',
                                                     'pctStart': 0.25}, 17),
        one_cycle_case('three-phase-epochs', 'sgd', {'maxLr': 0.3, 'epochs': 3, 'stepsPerEpoch': 8, 'threePhase': True,
                                                     'divFactor': 10, 'finalDivFactor': 100}, 24),
        one_cycle_case('no-momentum-cycle', 'adam', {'maxLr': 0.01, 'totalSteps': 10, 'cycleMomentum': False,
                                                    'pctStart': 0.5}, 11),
        one_cycle_case('custom-momenta', 'sgd', {'maxLr': 0.2, 'totalSteps': 12, 'baseMomentum': 0.8,
                                                 'maxMomentum': 0.9}, 12),
    ]
    meta = f'tools/golden/schedulers_ref.py, torch {torch.__version__}'
    with open(OUT, 'w') as f:
        json.dump({'meta': meta, 'plateau': plateau, 'oneCycle': one_cycle}, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
