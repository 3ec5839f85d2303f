// Dialogues assembled from hand-written turn templates: customer support, tutoring, trip planning, tech help,
// question-and-answer chats and small talk.

import { GLOSSARY, SMALL_TALK } from './glossary.mjs';
import { mathProblem } from './math.mjs';
import { CITIES, FIRST_NAMES, PRODUCTS, WEEKDAYS, article, cap, clock, money, pluralNoun } from './words.mjs';

/** Speaker-label formats. */
const FORMATS = [
  (name, text) => `${name}: ${text}`,
  (name, text) => `**${name}:** ${text}`,
  (name, text) => `${name.toUpperCase()}\n    ${text}`,
  (name, text) => `[${name}] ${text}`,
];

function render(rng, turns, title) {
  const fmt = rng.pick(FORMATS);
  const body = turns.map(([who, text]) => fmt(who, text)).join('\n\n');
  return title ? `${title}\n\n${body}\n` : `${body}\n`;
}

function supportChat(rng) {
  const agent = rng.pick(FIRST_NAMES);
  const customer = rng.pick(FIRST_NAMES);
  const order = `${rng.int(100, 999)}-${rng.int(1000, 9999)}`;
  const [item, price] = rng.pick(PRODUCTS);
  const days = rng.int(2, 9);
  const problem = rng.int(0, 2);
  const turns = [
    [agent, rng.pick([`Hello, you are through to support. My name is ${agent}. How can I help?`, `Hi, this is ${agent} from the help desk. What can I do for you today?`, `Good ${rng.pick(['morning', 'afternoon', 'evening'])}! ${agent} here. How can I help?`])],
  ];
  if (problem === 0) {
    turns.push([customer, rng.pick([`I ordered ${article(item)} ${days + 5} days ago and it still has not arrived.`, `My order hasn't shown up. It was supposed to come ${days} days ago.`, `Hi, I'm waiting for ${article(item)} and the tracking page hasn't changed in a week.`])]);
    turns.push([agent, `I'm sorry about the wait. Could you give me the order number? It starts with three digits and a dash.`]);
    turns.push([customer, `Sure, it's ${order}.`]);
    turns.push([agent, rng.pick([`Thank you. I can see the parcel left our warehouse on ${rng.pick(WEEKDAYS)} but the courier has not scanned it since. That usually means it is delayed at a sorting centre.`, `Thanks. The system says the parcel was handed to the courier, and then nothing. I have opened an investigation with them.`])]);
    turns.push([customer, rng.pick(['So what happens now?', 'Is there anything I can do?', 'Will I have to pay again?'])]);
    turns.push([agent, rng.pick([`If it has not moved in ${days} working days, we will send a replacement at no cost, or refund the ${money(price)} if you prefer. I'll email you either way.`, `Nothing more on your side. If the courier cannot find it within ${days} days, you choose between a replacement and a full refund of ${money(price)}.`])]);
    turns.push([customer, rng.pick(['A replacement would be best, thanks.', 'I would rather have the refund, to be honest.', 'Okay, that sounds fair. Thank you.'])]);
  } else if (problem === 1) {
    const [wrong] = rng.pick(PRODUCTS.filter((p) => p[0] !== item));
    turns.push([customer, `I ordered ${article(item)} but the box had ${article(wrong)} in it.`]);
    turns.push([agent, rng.pick(['Oh no, that is on us. Do you have the order number handy?', 'I apologise for the mix-up. May I have your order number?'])]);
    turns.push([customer, `${order}. The packing slip says ${item}, so it was packed wrong.`]);
    turns.push([agent, `You're right, I can see that. I'll send the ${item} today by express, and a return label for the ${wrong}. There's no need to pay for postage.`]);
    turns.push([customer, rng.pick([`How long do I have to send the ${wrong} back?`, 'Do I need the original packaging?'])]);
    turns.push([agent, rng.pick([`You have ${days * 5} days, and any sturdy box is fine.`, `Any box will do, and there is no rush: ${days * 5} days from today.`])]);
  } else {
    turns.push([customer, `I'd like to return ${article(item)}. It works, but it's not what I expected.`]);
    turns.push([agent, `That's fine. Items can be returned within 30 days if they're unused. Is that the case here?`]);
    turns.push([customer, rng.pick(['Yes, I only opened the box.', 'I used it once, to try it. Is that a problem?'])]);
    turns.push([agent, rng.pick([`That is fine. Once it reaches us we refund ${money(price)} to the card you paid with, usually within ${days} days.`, `Trying it once is okay. After we receive it, the refund of ${money(price)} takes ${days} working days.`])]);
  }
  turns.push([agent, rng.pick(['Is there anything else I can help with?', 'Anything else I can do for you today?'])]);
  turns.push([customer, rng.pick(['No, that was all. Thanks for your help!', 'That covers it, thank you.', 'No, thank you. Have a good day.'])]);
  return render(rng, turns, rng.chance(0.4) ? `Support chat transcript, ticket #${rng.int(10000, 99999)}` : null);
}

function tutoring(rng) {
  const tutor = rng.pick(['Tutor', 'Teacher', rng.pick(FIRST_NAMES)]);
  const student = rng.pick(['Student', rng.pick(FIRST_NAMES)]);
  const p = mathProblem(rng);
  const turns = [
    [student, rng.pick([`I'm stuck on this one: ${p.q}`, `Can you help me with this question? ${p.q}`, `I don't know where to start. ${p.q}`])],
    [tutor, rng.pick(['Let\'s go through it one step at a time. What do you think the first step is?', 'Sure. Before we compute anything, what is the question asking for?', 'Good question. Try to say in your own words what we need to find.'])],
    [student, rng.pick(['I think we need to work something out first, but I am not sure what.', 'We need the final number, but I get lost halfway.', 'I tried, but my answer looked wrong.'])],
  ];
  p.steps.forEach((s, i) => {
    turns.push([tutor, i === 0 ? `Here is how to begin. ${s}` : rng.pick([`Next: ${s}`, `Now, ${s.charAt(0).toLowerCase()}${s.slice(1)}`, s])]);
    if (i < p.steps.length - 1 && rng.chance(0.5)) {
      turns.push([student, rng.pick(['Okay, that makes sense.', 'Right, I see.', 'Why that step?', 'Got it. Then what?'])]);
      if (turns[turns.length - 1][1] === 'Why that step?') turns.push([tutor, 'Because it gets us closer to something we can compute directly. Each step should make the problem simpler.']);
    }
  });
  turns.push([student, `So the answer is ${p.answer}?`]);
  turns.push([tutor, rng.pick(['Exactly. And notice how each step only used the one before it.', 'Yes! Try the next problem the same way and tell me how it goes.', 'That\'s it. Always check the answer against the question at the end.'])]);
  return render(rng, turns, null);
}

function tripPlanning(rng) {
  const [a, b] = rng.sample(FIRST_NAMES, 2);
  const [from, to] = rng.sample(CITIES, 2);
  const dep = rng.int(6 * 60, 11 * 60);
  const dur = rng.int(70, 320);
  const fare = rng.int(18, 95) * 100;
  const nights = rng.int(2, 5);
  const room = rng.int(60, 160) * 100;
  const day = rng.pick(WEEKDAYS);
  const total = 2 * fare + nights * room;
  const turns = [
    [a, rng.pick([`So, are we really doing the trip to ${to}?`, `I checked the trains to ${to}. Still interested?`, `${to} next month, yes or no?`])],
    [b, rng.pick(['Yes, definitely. When can you get away?', 'Absolutely. I already asked for the days off.', 'Yes, as long as we don\'t start at dawn.'])],
    [a, `There's a train from ${from} on ${day} at ${clock(dep)}. It takes ${Math.floor(dur / 60)} hours ${dur % 60} minutes, so we'd arrive at ${clock(dep + dur)}.`],
    [b, rng.pick([`${clock(dep)} is early, but arriving by ${clock(dep + dur)} gives us the whole afternoon. How much is it?`, 'That works. What does it cost?'])],
    [a, `${money(fare)} each way per person. I found a guesthouse for ${money(room)} a night for the two of us.`],
    [b, `For ${nights} nights that's ${money(nights * room)}, plus ${money(2 * fare)} for my train tickets there and back.`],
    [a, `And the same train fare for me. Together it comes to ${money(total + 2 * fare)}, so ${money((total + 2 * fare) / 2)} each.`],
    [b, rng.pick(['That\'s less than I feared. Book it before the prices go up.', 'Fine by me. I\'ll pay you back for my half as soon as you book.', 'Good. I\'ll make a list of things to see.'])],
    [a, rng.pick([`Done. I'll send you the tickets tonight. Pack light, the guesthouse has stairs and no lift.`, `Booked. We meet at the station at ${clock(dep - 20)}.`])],
  ];
  return render(rng, turns, null);
}

const BUGS = [
  {
    q: 'My function should return the sum of the list but it always returns None.',
    code: 'def total(values):\n    result = 0\n    for v in values:\n        result += v',
    why: 'The function computes result but never returns it, and a Python function without a return statement returns None.',
    fix: 'def total(values):\n    result = 0\n    for v in values:\n        result += v\n    return result',
  },
  {
    q: 'Every time I call add_item, the list keeps the items from the previous calls. Why?',
    code: 'def add_item(item, basket=[]):\n    basket.append(item)\n    return basket',
    why: 'The default value [] is created once, when the function is defined, and then shared by every call that relies on it. Appending to it changes that one shared list.',
    fix: 'def add_item(item, basket=None):\n    if basket is None:\n        basket = []\n    basket.append(item)\n    return basket',
  },
  {
    q: 'My loop skips the last element of the array.',
    code: 'for (let i = 0; i < items.length - 1; i++) {\n  console.log(items[i]);\n}',
    why: 'The condition i < items.length - 1 stops one step early. Indexes run from 0 to length - 1, so the loop must continue while i < items.length.',
    fix: 'for (let i = 0; i < items.length; i++) {\n  console.log(items[i]);\n}',
  },
  {
    q: 'The sort puts 10 before 9. I expected numbers in order.',
    code: 'const sorted = [9, 10, 1, 25].sort();',
    why: 'Array.prototype.sort compares elements as strings unless you give it a comparison function, and as strings "10" comes before "9".',
    fix: 'const sorted = [9, 10, 1, 25].sort((a, b) => a - b);',
  },
  {
    q: 'I await the fetch but the data variable is still a Promise.',
    code: 'async function load() {\n  const response = await fetch(url);\n  const data = response.json();\n  return data.items;\n}',
    why: 'response.json() also returns a Promise, so data is a Promise and data.items is undefined. It needs its own await.',
    fix: 'async function load() {\n  const response = await fetch(url);\n  const data = await response.json();\n  return data.items;\n}',
  },
  {
    q: 'In C, my average always comes out as a whole number.',
    code: 'int sum = 7, count = 2;\ndouble avg = sum / count;',
    why: 'sum / count divides two ints, so the result is truncated to 3 before it is converted to double.',
    fix: 'int sum = 7, count = 2;\ndouble avg = (double)sum / count;',
  },
  {
    q: 'Comparing the two strings with == says they are different, but they print the same.',
    code: 'if (name == "admin") {\n    grant();\n}',
    why: 'In Java, == on strings compares references, not contents. Two equal strings can be different objects.',
    fix: 'if ("admin".equals(name)) {\n    grant();\n}',
  },
  {
    q: 'I get "list index out of range" when removing negative numbers in a loop.',
    code: 'for i in range(len(nums)):\n    if nums[i] < 0:\n        del nums[i]',
    why: 'Deleting shrinks the list while range(len(nums)) still counts up to the old length, so the index eventually points past the end. Elements after a deleted one are also skipped.',
    fix: 'nums = [n for n in nums if n >= 0]',
  },
  {
    q: 'My shell script breaks on file names with spaces.',
    code: 'for f in $(ls *.txt); do\n  wc -l $f\ndone',
    why: 'The output of ls is split on whitespace, so "my notes.txt" becomes two words, and the unquoted $f is split again.',
    fix: 'for f in *.txt; do\n  wc -l "$f"\ndone',
  },
  {
    q: '0.1 + 0.2 == 0.3 is false in my program. Is the computer broken?',
    code: 'print(0.1 + 0.2 == 0.3)',
    why: 'Neither 0.1 nor 0.2 can be stored exactly in binary floating point, and their rounded sum differs from the rounded 0.3 in the last bit. Compare floats with a tolerance.',
    fix: 'import math\nprint(math.isclose(0.1 + 0.2, 0.3))',
  },
];

function techHelp(rng) {
  const bug = rng.pick(BUGS);
  const user = rng.pick(['User', rng.pick(FIRST_NAMES)]);
  const helper = rng.pick(['Assistant', rng.pick(FIRST_NAMES)]);
  const turns = [
    [user, `${bug.q}\n\n${bug.code}`],
    [helper, `${rng.pick(['I see the problem.', 'This one catches a lot of people.', 'Good that you included the code.'])} ${bug.why}`],
    [user, rng.pick(['So how should I write it?', 'How do I fix it?', 'What is the right way?'])],
    [helper, `${rng.pick(['Like this:', 'Change it to:', 'One fix:'])}\n\n${bug.fix}\n\n${rng.pick(['A quick test with a small input would have shown it, so it is worth adding one.', 'That version behaves the same for every input, including the edge cases.', 'Try it on the example that failed before.'])}`],
    [user, rng.pick(['That works now, thanks!', 'Perfect, thank you.', 'Ah, of course. Thanks.'])],
  ];
  return render(rng, turns, null);
}

function qaChat(rng) {
  const items = rng.sample(GLOSSARY, rng.int(2, 4));
  const turns = [];
  const user = rng.pick(['User', 'Q', rng.pick(FIRST_NAMES)]);
  const bot = rng.pick(['Assistant', 'A', 'Guide']);
  items.forEach(([q, a], i) => {
    turns.push([user, i === 0 ? q : rng.pick([q, `Another question: ${q.charAt(0).toLowerCase()}${q.slice(1)}`, `And ${q.charAt(0).toLowerCase()}${q.slice(1)}`])]);
    turns.push([bot, a]);
    if (rng.chance(0.3)) {
      const follow = rng.int(0, 2);
      if (follow === 0) {
        turns.push([user, 'Can you give a one-sentence version?']);
        turns.push([bot, `${a.split('. ')[0]}.`]);
      } else if (follow === 1) {
        turns.push([user, rng.pick(['Thanks, that is clear.', 'Thank you, that helps.'])]);
        turns.push([bot, rng.pick(['Glad it helped.', 'You are welcome. Ask if anything else comes up.'])]);
      } else {
        turns.push([user, rng.pick(['Interesting, I did not know that.', 'Huh, that is simpler than I thought.'])]);
        turns.push([bot, rng.pick(['It is one of those things that is easy once you have seen it.', 'Most people never think about it, so good question.'])]);
      }
    }
  });
  return render(rng, turns, null);
}

function smallTalk(rng) {
  const [a, b] = rng.sample(FIRST_NAMES, 2);
  const topics = rng.sample(SMALL_TALK, rng.int(2, 4));
  const turns = [[a, rng.pick([`Hi ${b}!`, `${b}! I haven't seen you in ages.`, `Morning, ${b}.`])], [b, rng.pick([`Hello ${a}! How are you?`, `${a}, hi! Good to see you.`, 'Oh, hi! I was just thinking about you.'])]];
  topics.forEach(([q, answers], i) => {
    const [x, y] = i % 2 === 0 ? [a, b] : [b, a];
    const [answer, reaction] = rng.pick(answers);
    turns.push([x, q]);
    turns.push([y, answer]);
    if (rng.chance(0.6)) turns.push([x, reaction]);
  });
  turns.push([a, rng.pick(['Anyway, I have to run. See you soon!', 'I should go, the bus is coming. Take care!', 'Let\'s get coffee next week.'])]);
  turns.push([b, rng.pick(['See you!', 'Bye, take care.', 'Yes, let\'s. Bye!'])]);
  return render(rng, turns, null);
}

const KINDS = [supportChat, tutoring, tutoring, tripPlanning, techHelp, techHelp, qaChat, qaChat, smallTalk];

export function dialogueDocument(rng) {
  const n = rng.chance(0.3) ? 2 : 1;
  return Array.from({ length: n }, () => rng.pick(KINDS)(rng)).join('\n---\n\n');
}
